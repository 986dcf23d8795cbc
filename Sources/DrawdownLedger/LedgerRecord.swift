/// The fixed 96-byte header in front of every record of a segment file (docs/ledger-format.md).
///
///     0   4  magic "DDLB"
///     4   4  CRC32C of bytes [8, recordLength): the rest of the header and the compressed body
///     8   2  format version (1)
///     10  1  kind
///     11  1  flags (0)
///     12  4  record length: header + compressed body
///     16  8  batch number
///     24  4  uncompressed body length
///     28  4  CRC32C of the header alone: bytes [8, 28) and [32, 96)
///     32  32 previous hash
///     64  32 this batch's hash
///
/// All integers little-endian.
struct LedgerRecordHeader: Equatable {
    static let byteCount = 96
    static let magic: UInt32 = 0x424C_4444  // "DDLB" read as little-endian
    static let formatVersion: UInt16 = 1
    static let checksumStart = 8
    static let headerChecksumOffset = 28

    var checksum: UInt32
    var kindByte: UInt8
    var recordLength: UInt32
    var batchNumber: UInt64
    var bodyLength: UInt32
    var headerChecksum: UInt32 = 0
    var previousHash: LedgerHash
    var hash: LedgerHash

    func encode(into w: inout ByteWriter) {
        w.write(Self.magic)
        w.write(checksum)
        w.write(Self.formatVersion)
        w.write(kindByte)
        w.write(UInt8(0))
        w.write(recordLength)
        w.write(batchNumber)
        w.write(bodyLength)
        w.write(headerChecksum)
        w.write(bytes: previousHash.bytes)
        w.write(bytes: hash.bytes)
    }

    /// Parses the header at the start of `bytes` (which must hold at least `byteCount` bytes);
    /// checks what can be checked without the body.
    static func decode(_ bytes: [UInt8], limits: LedgerLimits) -> Result<LedgerRecordHeader, HeaderFault> {
        precondition(bytes.count >= byteCount)
        var r = ByteReader(bytes)
        do {
            let magic: UInt32 = try r.read()
            if magic != Self.magic { return .failure(.badMagic) }
            let checksum: UInt32 = try r.read()
            let version: UInt16 = try r.read()
            if version != formatVersion { return .failure(.other("format version \(version), this build reads \(formatVersion)")) }
            let kindByte: UInt8 = try r.read()
            let flags: UInt8 = try r.read()
            let recordLength: UInt32 = try r.read()
            let batchNumber: UInt64 = try r.read()
            let bodyLength: UInt32 = try r.read()
            let storedHeaderChecksum: UInt32 = try r.read()
            let computed = headerChecksum(of: bytes)
            if computed != storedHeaderChecksum {
                return .failure(.other("header checksum mismatch (\(String(format32: storedHeaderChecksum, computed)))"))
            }
            let previousHash = LedgerHash(bytes: try r.readBytes(LedgerHash.byteCount))
            let hash = LedgerHash(bytes: try r.readBytes(LedgerHash.byteCount))
            let header = LedgerRecordHeader(
                checksum: checksum, kindByte: kindByte, recordLength: recordLength,
                batchNumber: batchNumber, bodyLength: bodyLength, headerChecksum: storedHeaderChecksum,
                previousHash: previousHash, hash: hash)
            let bodyBound = Zstd.compressBound(limits.batchBodyBytesMax)
            if Int(recordLength) <= byteCount || Int(recordLength) > byteCount + bodyBound {
                return .failure(.badLength(header))
            }
            if flags != 0 { return .failure(.other("reserved header bits set")) }
            return .success(header)
        } catch {
            return .failure(.other("\(error)"))
        }
    }
}

extension LedgerRecordHeader {
    /// The header checksum: over the header without its magic and both checksum fields, so a
    /// header whose length field is damaged is never mistaken for a record cut short by a crash.
    static func headerChecksum(of bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[checksumStart..<headerChecksumOffset]))
            return CRC32C.update(first, UnsafeRawBufferPointer(rebasing: raw[(headerChecksumOffset + 4)..<byteCount]))
        }
    }
}

/// Why a record header could not be used.
enum HeaderFault: Error {
    case badMagic
    /// The header parsed but its record length is impossible.
    case badLength(LedgerRecordHeader)
    case other(String)

    var reason: String {
        switch self {
        case .badMagic: "bad magic (not the start of a record)"
        case .badLength(let h): "impossible record length \(h.recordLength)"
        case .other(let s): s
        }
    }
}

/// Encoding and decoding of whole records: body layout, compression, checksum, hash.
enum LedgerRecord {
    /// The uncompressed body (docs/ledger-format.md, "Body").
    static func encodeBody(_ b: LedgerBatch) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + b.payload.count + b.positions.count * 32 + b.sequenceRanges.count * 20)
        w.write(b.number)
        w.write(b.kind.rawValue)
        w.write(UInt32(b.positions.count))
        for p in b.positions {
            w.write(UInt16(p.topic.utf8.count))
            w.write(bytes: p.topic.utf8)
            w.write(p.partition)
            w.write(p.nextOffset)
        }
        w.write(UInt32(b.sequenceRanges.count))
        for r in b.sequenceRanges {
            w.write(r.partition)
            w.write(r.firstSeq)
            w.write(r.lastSeq)
        }
        if let t = b.eventTime {
            w.write(UInt8(1))
            w.write(t.minNanos)
            w.write(t.maxNanos)
        } else {
            w.write(UInt8(0))
        }
        w.write(UInt32(b.payload.count))
        w.write(bytes: b.payload)
        return w.bytes
    }

    static func decodeBody(_ body: [UInt8], previousHash: LedgerHash) throws -> LedgerBatch {
        var r = ByteReader(body)
        let number: UInt64 = try r.read()
        let kindByte: UInt8 = try r.read()
        guard let kind = LedgerBatchKind(rawValue: kindByte) else {
            throw ByteReaderError(description: "unknown batch kind \(kindByte)")
        }
        let positionCount: UInt32 = try r.read()
        // Every position takes at least 14 bytes: a count that cannot fit is rejected before allocating.
        guard Int(positionCount) <= r.remaining / 14 else {
            throw ByteReaderError(description: "\(positionCount) positions cannot fit in the body")
        }
        var positions: [InputPosition] = []
        positions.reserveCapacity(Int(positionCount))
        for _ in 0..<positionCount {
            let topicLength: UInt16 = try r.read()
            let topicBytes = try r.readBytes(Int(topicLength))
            guard let topic = String(validating: topicBytes, as: UTF8.self) else {
                throw ByteReaderError(description: "topic name is not UTF-8")
            }
            positions.append(InputPosition(topic: topic, partition: try r.read(), nextOffset: try r.read()))
        }
        let rangeCount: UInt32 = try r.read()
        guard Int(rangeCount) <= r.remaining / 20 else {
            throw ByteReaderError(description: "\(rangeCount) sequence ranges cannot fit in the body")
        }
        var ranges: [SequenceRange] = []
        ranges.reserveCapacity(Int(rangeCount))
        for _ in 0..<rangeCount {
            ranges.append(SequenceRange(partition: try r.read(), firstSeq: try r.read(), lastSeq: try r.read()))
        }
        let hasTime: UInt8 = try r.read()
        var eventTime: EventTimeRange?
        switch hasTime {
        case 0: eventTime = nil
        case 1: eventTime = EventTimeRange(minNanos: try r.read(), maxNanos: try r.read())
        default: throw ByteReaderError(description: "event-time flag \(hasTime)")
        }
        let payloadLength: UInt32 = try r.read()
        let payload = Array(try r.readBytes(Int(payloadLength)))
        guard r.remaining == 0 else {
            throw ByteReaderError(description: "\(r.remaining) bytes after the payload")
        }
        return LedgerBatch(
            number: number, previousHash: previousHash, kind: kind, positions: positions,
            sequenceRanges: ranges, eventTime: eventTime, payload: payload)
    }

    /// The bytes of one record ready to write, and the batch's chain hash.
    /// `batch` must already have passed `problem(limits:)`.
    static func encode(_ batch: LedgerBatch, zstd: Zstd, limits: LedgerLimits) throws -> (bytes: [UInt8], hash: LedgerHash) {
        let body = encodeBody(batch)
        guard body.count <= limits.batchBodyBytesMax else {
            throw LedgerError.invalidBatch("body of \(body.count) bytes, more than \(limits.batchBodyBytesMax)")
        }
        let hash = body.withUnsafeBytes { LedgerHash.chaining(batch.previousHash, body: $0) }
        var record = [UInt8](repeating: 0, count: LedgerRecordHeader.byteCount)
        record.reserveCapacity(LedgerRecordHeader.byteCount + Zstd.compressBound(body.count))
        do {
            try body.withUnsafeBytes { raw throws in try zstd.compress(raw, appendingTo: &record) }
        } catch {
            throw LedgerError.invalidBatch("\(error)")
        }
        var header = LedgerRecordHeader(
            checksum: 0, kindByte: batch.kind.rawValue, recordLength: UInt32(record.count),
            batchNumber: batch.number, bodyLength: UInt32(body.count),
            previousHash: batch.previousHash, hash: hash)
        var w = ByteWriter(capacity: LedgerRecordHeader.byteCount)
        header.encode(into: &w)
        header.headerChecksum = LedgerRecordHeader.headerChecksum(of: w.bytes)
        w = ByteWriter(capacity: LedgerRecordHeader.byteCount)
        header.encode(into: &w)
        record.replaceSubrange(0..<LedgerRecordHeader.byteCount, with: w.bytes)
        header.checksum = record.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[LedgerRecordHeader.checksumStart...])) }
        withUnsafeBytes(of: header.checksum.littleEndian) { record.replaceSubrange(4..<8, with: $0) }
        return (record, hash)
    }

    /// Checks and decodes a whole record (`bytes` holds exactly `header.recordLength` bytes):
    /// checksum, decompression, body layout, hash, header/body agreement, batch properties.
    /// The thrown string is the reason.
    static func decode(_ bytes: [UInt8], header: LedgerRecordHeader, zstd: Zstd, limits: LedgerLimits) -> Result<LedgerBatch, RecordFault> {
        precondition(bytes.count == Int(header.recordLength))
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[LedgerRecordHeader.checksumStart...])) }
        if crc != header.checksum {
            return .failure(.checksum(String(format32: header.checksum, crc)))
        }
        let body: [UInt8]
        do {
            body = try bytes.withUnsafeBytes { raw throws in
                try zstd.decompress(
                    UnsafeRawBufferPointer(rebasing: raw[LedgerRecordHeader.byteCount...]),
                    decompressedBytesMax: limits.batchBodyBytesMax, expectedBytes: Int(header.bodyLength))
            }
        } catch {
            return .failure(.content("\(error)"))
        }
        let hash = body.withUnsafeBytes { LedgerHash.chaining(header.previousHash, body: $0) }
        if hash != header.hash {
            return .failure(.content("hash of the body is \(hash), the header says \(header.hash)"))
        }
        let batch: LedgerBatch
        do {
            batch = try decodeBody(body, previousHash: header.previousHash)
        } catch {
            return .failure(.content("body: \(error)"))
        }
        if batch.number != header.batchNumber || batch.kind.rawValue != header.kindByte {
            return .failure(.content("header says batch \(header.batchNumber) kind \(header.kindByte), body says batch \(batch.number) kind \(batch.kind.rawValue)"))
        }
        if let problem = batch.problem(limits: limits) {
            return .failure(.content(problem))
        }
        return .success(batch)
    }
}

/// Why a whole record was rejected.
enum RecordFault: Error {
    /// The checksum does not match: the bytes changed after writing (or were never all written).
    case checksum(String)
    /// The checksum matches but the content is wrong: written wrong, or deliberately altered.
    case content(String)

    var reason: String {
        switch self {
        case .checksum(let s): "checksum mismatch (\(s))"
        case .content(let s): s
        }
    }
}

extension String {
    init(format32 stored: UInt32, _ computed: UInt32) {
        self = "stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))"
    }
}
