/// Reads `count` bytes at `offset`, fewer only at end of file.
func readFully(_ io: any StorageIO, _ fd: Int32, count: Int, at offset: Int64) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let n = try out.withUnsafeMutableBytes { raw throws in
            try io.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: offset + Int64(done))
        }
        if n == 0 { break }
        done += n
    }
    if done < count { out.removeLast(count - done) }
    return out
}

/// Writes all of `bytes` at `offset`, looping on short writes.
func writeFully(_ io: any StorageIO, _ fd: Int32, _ bytes: [UInt8], at offset: Int64) throws {
    var done = 0
    while done < bytes.count {
        let n = try bytes.withUnsafeBytes { raw throws in
            try io.pwrite(fd, UnsafeRawBufferPointer(rebasing: raw[done...]), at: offset + Int64(done))
        }
        if n <= 0 { throw StorageError(operation: "pwrite (wrote nothing)", path: "fd \(fd)", errno: 5) }
        done += n
    }
}

/// One step of reading a segment file record by record.
enum SegmentStep {
    case record(LedgerBatch, LedgerRecordHeader, offset: Int64)
    case damaged(SegmentDamage)
    case end
}

/// A place in a segment where no good record could be read.
struct SegmentDamage: Error {
    let offset: Int64
    /// From the record's header, when it could be parsed.
    let header: LedgerRecordHeader?
    let reason: String
    /// The damage could be a single record whose write never completed: what lies from `offset`
    /// to the end of the file is a short header, a header whose record runs past (or exactly to)
    /// the end of the file, or a zeroed header. Only such damage at the end of the last segment
    /// is a torn tail; anywhere else it is corruption.
    let couldBeTornWrite: Bool
    /// Where the next record starts, when the header's length can be trusted enough to skip.
    let resumeOffset: Int64?
}

/// Reads the records of one segment file in order, checking each on its own (checksum, body,
/// hash, properties). The chain between records is the caller's business.
struct SegmentScanner {
    let io: any StorageIO
    let fd: Int32
    let fileSize: Int64
    let limits: LedgerLimits
    let zstd: Zstd
    private(set) var offset: Int64

    init(io: any StorageIO, fd: Int32, fileSize: Int64, limits: LedgerLimits, zstd: Zstd, offset: Int64 = 0) {
        self.io = io
        self.fd = fd
        self.fileSize = fileSize
        self.limits = limits
        self.zstd = zstd
        self.offset = offset
    }

    /// Continues after damage at `resume` (verification only).
    mutating func skip(to resume: Int64) { offset = resume }

    /// The record header at the current offset, or damage (without moving on).
    mutating func peekHeader() throws -> Result<LedgerRecordHeader, SegmentDamage>? {
        let remaining = fileSize - offset
        if remaining <= 0 { return nil }
        let headerBytes = try readFully(io, fd, count: LedgerRecordHeader.byteCount, at: offset)
        if headerBytes.count < LedgerRecordHeader.byteCount {
            return .failure(SegmentDamage(
                offset: offset, header: nil,
                reason: "short header: \(headerBytes.count) bytes before the end of the file",
                couldBeTornWrite: true, resumeOffset: nil))
        }
        switch LedgerRecordHeader.decode(headerBytes, limits: limits) {
        case .success(let header):
            return .success(header)
        case .failure(let fault):
            let zeroed = headerBytes.allSatisfy { $0 == 0 }
            let oneRecordMax = Int64(LedgerRecordHeader.byteCount + Zstd.compressBound(limits.batchBodyBytesMax))
            return .failure(SegmentDamage(
                offset: offset, header: nil, reason: zeroed ? "zeroed header" : fault.reason,
                couldBeTornWrite: zeroed && remaining <= oneRecordMax, resumeOffset: nil))
        }
    }

    mutating func next() throws -> SegmentStep {
        guard let peeked = try peekHeader() else { return .end }
        let header: LedgerRecordHeader
        switch peeked {
        case .failure(let damage): return .damaged(damage)
        case .success(let h): header = h
        }
        let remaining = fileSize - offset
        let length = Int64(header.recordLength)
        if length > remaining {
            return .damaged(SegmentDamage(
                offset: offset, header: header,
                reason: "short record: \(length) bytes long, \(remaining) before the end of the file",
                couldBeTornWrite: true, resumeOffset: nil))
        }
        let bytes = try readFully(io, fd, count: Int(length), at: offset)
        guard bytes.count == Int(length) else {
            return .damaged(SegmentDamage(
                offset: offset, header: header, reason: "file shrank while reading",
                couldBeTornWrite: true, resumeOffset: nil))
        }
        switch LedgerRecord.decode(bytes, header: header, zstd: zstd, limits: limits) {
        case .failure(let fault):
            return .damaged(SegmentDamage(
                offset: offset, header: header, reason: fault.reason,
                couldBeTornWrite: length == remaining, resumeOffset: offset + length))
        case .success(let batch):
            let at = offset
            offset += length
            return .record(batch, header, offset: at)
        }
    }
}

/// File names that are a batch number, zero-padded to 20 digits, and a suffix: segments
/// (`00000000000000000001.seg`, named for their first batch) and snapshots (`….snap`, named for
/// the batch they cover), and the correction records of `drawdown replay`.
public enum NumberedFileName {
    static let digits = 20

    public static func make(_ number: UInt64, suffix: String) -> String {
        let n = String(number)
        return String(repeating: "0", count: digits - n.count) + n + suffix
    }

    public static func parse(_ name: String, suffix: String) -> UInt64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        guard stem.count == digits, stem.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(stem)
    }
}

enum SegmentName {
    static let suffix = ".seg"
    static func make(firstBatch: UInt64) -> String { NumberedFileName.make(firstBatch, suffix: suffix) }
    static func parse(_ name: String) -> UInt64? { NumberedFileName.parse(name, suffix: suffix) }
}
