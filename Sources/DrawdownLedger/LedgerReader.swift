/// Reads batches in order from one batch number to the last batch durable when the reader was
/// made. Checks every record again (checksum, body, hash) and the chain link between the
/// batches it returns; damage throws `LedgerError.corrupt`. Owned by one thread.
public final class LedgerReader {
    private let io: any StorageIO
    private let limits: LedgerLimits
    private let segments: [SegmentInfo]
    private let zstd: Zstd
    private let first: UInt64
    private let last: UInt64
    private var segmentIndex: Int
    private var scanner: SegmentScanner?
    private var startOffset: Int64
    private var fd: Int32 = -1
    /// The chain hash of the batch `next()` returned last.
    public private(set) var lastHash: LedgerHash?
    private var lastNumber: UInt64?

    init(io: any StorageIO, limits: LedgerLimits, segments: [SegmentInfo], startSegment: Int,
         startOffset: Int64, first: UInt64, last: UInt64) {
        self.io = io
        self.limits = limits
        self.segments = segments
        self.zstd = Zstd(level: limits.zstdLevel)
        self.first = first
        self.last = last
        self.segmentIndex = startSegment
        self.startOffset = startOffset
    }

    deinit {
        if fd >= 0 { io.close(fd) }
    }

    /// The next batch, or nil after the last one.
    public func next() throws -> LedgerBatch? {
        while true {
            if let n = lastNumber, n >= last { return nil }
            if first > last || segmentIndex >= segments.count { return nil }
            if scanner == nil { try openSegment() }
            let path = segments[segmentIndex].path
            switch try io(scanner!.next()) {
            case .end:
                closeSegment()
                segmentIndex += 1
                startOffset = 0
            case .damaged(let damage):
                throw LedgerError.corrupt(LedgerProblem(
                    batchNumber: damage.header?.batchNumber ?? (lastNumber.map { $0 + 1 } ?? first), file: path,
                    byteOffset: damage.offset, reason: damage.reason))
            case .record(let batch, let header, let offset):
                if batch.number < first { continue }
                let expected = lastNumber.map { $0 + 1 } ?? first
                if batch.number != expected || (lastHash.map { $0 != batch.previousHash } ?? false) {
                    throw LedgerError.corrupt(LedgerProblem(
                        batchNumber: batch.number, file: path, byteOffset: offset,
                        reason: "read batch \(batch.number) (previous hash \(batch.previousHash)) where batch \(expected) following \(lastHash?.description ?? "?") was expected"))
                }
                lastNumber = batch.number
                lastHash = header.hash
                return batch
            }
        }
    }

    private func io<T>(_ body: @autoclosure () throws -> T) throws -> T {
        do { return try body() } catch { throw LedgerError.wrapping(error) }
    }

    private func openSegment() throws {
        let path = segments[segmentIndex].path
        fd = try io(io.openForReading(path))
        let size = try io(io.fileSize(fd))
        scanner = SegmentScanner(io: io, fd: fd, fileSize: size, limits: limits, zstd: zstd, offset: startOffset)
    }

    private func closeSegment() {
        if fd >= 0 { io.close(fd) }
        fd = -1
        scanner = nil
    }
}
