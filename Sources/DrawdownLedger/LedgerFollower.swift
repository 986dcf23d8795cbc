/// Reads a ledger that a live `LedgerStore` (another thread or process) is appending to,
/// without its lock and without changing anything: batch after batch in order, picking up
/// where the last call stopped, so following the ledger costs one read of each new record.
/// Every record's checksum, hash and chain link are checked as `LedgerReader` checks them.
///
/// A record still being written (short, or running past the end of the file) is not an
/// error here: `next` returns nil and finds it complete on a later call. Owned by one thread.
public final class LedgerFollower {
    /// Where a batch's record starts: enough to read that one batch again (`read(at:)`).
    public struct Location: Sendable, Hashable {
        public var segmentFirstBatch: UInt64
        public var offset: Int64
    }

    public let ledgerDirectory: String
    private let io: any StorageIO
    private let limits: LedgerLimits
    private let zstd: Zstd
    private var segmentFirstBatch: UInt64?
    private var offset: Int64 = 0
    /// The number of the last batch `next` returned (0 before the first).
    public private(set) var lastNumber: UInt64 = 0
    private var lastHash = LedgerHash.zero

    public init(dataDirectory: String, limits: LedgerLimits = .default, io: any StorageIO = POSIXStorageIO()) {
        self.ledgerDirectory = dataDirectory + "/ledger"
        self.io = io
        self.limits = limits
        self.zstd = Zstd(level: limits.zstdLevel)
    }

    /// The next batch, when it is complete on disk and numbered at most `through`; nil
    /// otherwise. Throws `LedgerError.corrupt` on damage that is not a record being written.
    public func next(through: UInt64) throws -> (batch: LedgerBatch, location: Location)? {
        while lastNumber < through {
            if segmentFirstBatch == nil {
                guard let first = try segments().first else { return nil }
                segmentFirstBatch = first
                offset = 0
            }
            let first = segmentFirstBatch!
            let path = segmentPath(first)
            switch try step(path: path, at: offset) {
            case .record(let batch, let header, let at):
                let expected = lastNumber + 1
                guard batch.number == expected, batch.previousHash == lastHash else {
                    throw LedgerError.corrupt(LedgerProblem(
                        batchNumber: batch.number, file: path, byteOffset: at,
                        reason: "read batch \(batch.number) (previous hash \(batch.previousHash)) where batch \(expected) following \(lastHash) was expected"))
                }
                offset = at + Int64(header.recordLength)
                lastNumber = batch.number
                lastHash = header.hash
                return (batch, Location(segmentFirstBatch: first, offset: at))
            case .end:
                // The next segment, once the writer has rolled to it.
                guard try segments().contains(lastNumber + 1), lastNumber + 1 != first else { return nil }
                segmentFirstBatch = lastNumber + 1
                offset = 0
            case .damaged(let damage):
                if damage.couldBeTornWrite { return nil }
                throw LedgerError.corrupt(LedgerProblem(
                    batchNumber: damage.header?.batchNumber ?? lastNumber + 1, file: path, byteOffset: damage.offset,
                    reason: damage.reason))
            }
        }
        return nil
    }

    /// The batch whose record starts at `location` (one `next` returned), read and checked again.
    public func read(at location: Location) throws -> LedgerBatch {
        let path = segmentPath(location.segmentFirstBatch)
        switch try step(path: path, at: location.offset) {
        case .record(let batch, _, _):
            return batch
        case .end:
            throw LedgerError.corrupt(LedgerProblem(batchNumber: nil, file: path, byteOffset: location.offset, reason: "no record here"))
        case .damaged(let damage):
            throw LedgerError.corrupt(LedgerProblem(
                batchNumber: damage.header?.batchNumber, file: path, byteOffset: damage.offset, reason: damage.reason))
        }
    }

    private func segmentPath(_ firstBatch: UInt64) -> String { ledgerDirectory + "/" + SegmentName.make(firstBatch: firstBatch) }

    private func segments() throws -> [UInt64] {
        do {
            return try io.listDirectory(ledgerDirectory).compactMap(SegmentName.parse).sorted()
        } catch {
            throw LedgerError.wrapping(error)
        }
    }

    private func step(path: String, at offset: Int64) throws -> SegmentStep {
        do {
            let fd = try io.openForReading(path)
            defer { io.close(fd) }
            var scanner = SegmentScanner(io: io, fd: fd, fileSize: try io.fileSize(fd), limits: limits, zstd: zstd, offset: offset)
            return try scanner.next()
        } catch {
            throw LedgerError.wrapping(error)
        }
    }
}
