import Glibc
import Synchronization

/// What `LedgerStore.open` found and did, for the caller to log.
public struct RecoveryReport: Sendable, CustomStringConvertible {
    public let segmentCount: Int
    public let lastBatchNumber: UInt64
    public let lastHash: LedgerHash
    /// The torn last record that was cut (a crash mid-write), if there was one.
    public let tornTail: LedgerProblem?
    /// How many bytes the cut removed from the end of the last segment.
    public let bytesCut: Int64
    /// Files in the ledger directory that are not segments (left alone).
    public let otherFiles: [String]

    public var description: String {
        var s = "ledger recovered: \(segmentCount) segment(s), last batch \(lastBatchNumber), hash \(lastHash)"
        if let tornTail { s += "; cut a torn last record (\(bytesCut) bytes): \(tornTail)" }
        return s
    }
}

/// The append-only ledger: batches in segment files under `<data dir>/ledger/`.
///
/// One writer appends (`append` writes the record with pwrite, then fdatasyncs, before it
/// returns); any number of readers iterate with `batches(from:)`. After a write or sync error
/// the store is poisoned: it refuses every later append, since what reached the disk is unknown
/// and the processor must stop. State is behind a `Mutex`, so the store is `Sendable`.
public final class LedgerStore: Sendable {
    public let dataDirectory: String
    public let ledgerDirectory: String
    public let limits: LedgerLimits
    public let recoveryReport: RecoveryReport
    private let io: any StorageIO
    private let state: Mutex<State>
    /// Holds the exclusive lock on `ledger/LOCK` while the store lives: one writer per ledger.
    private let lockFD: Int32

    private struct State {
        var chain: LedgerChain
        var segments: [SegmentInfo]
        var index: SparseIndex
        /// The last segment, open for appending (-1 before the first segment exists).
        var activeFD: Int32
        var activeSize: Int64
        var poison: String?
        let zstd: Zstd
    }

    /// Opens (creating when missing) the ledger under `dataDirectory` and recovers it: reads every
    /// segment, checks checksums and the chain, cuts a torn last record, and throws
    /// `LedgerError.corrupt` naming the batch, file and offset for damage anywhere else.
    public static func open(
        dataDirectory: String, limits: LedgerLimits = .default, io: any StorageIO = POSIXStorageIO()
    ) throws -> LedgerStore {
        try LedgerStore(dataDirectory: dataDirectory, limits: limits, io: io)
    }

    private init(dataDirectory: String, limits: LedgerLimits, io: any StorageIO) throws {
        self.dataDirectory = dataDirectory
        self.ledgerDirectory = dataDirectory + "/ledger"
        self.limits = limits
        self.io = io
        do {
            try io.makeDirectory(dataDirectory)
            try io.makeDirectory(ledgerDirectory)
            try io.syncDirectory(dataDirectory)
        } catch {
            throw LedgerError.wrapping(error)
        }
        let lockFile = ledgerDirectory + "/" + Self.lockFileName
        do {
            lockFD = try io.lockExclusive(lockFile)
        } catch let error as StorageError where error.errno == EWOULDBLOCK {
            throw LedgerError.alreadyOpen(lockFile: lockFile)
        } catch {
            throw LedgerError.wrapping(error)
        }
        let scan: LedgerScan
        do {
            scan = try LedgerScan.run(ledgerDirectory: ledgerDirectory, io: io, limits: limits, mode: .recover)
        } catch {
            io.unlockAndClose(lockFD)
            throw LedgerError.wrapping(error)
        }
        var activeFD: Int32 = -1
        var activeSize: Int64 = 0
        var bytesCut: Int64 = 0
        if let last = scan.segments.last {
            do {
                activeFD = try io.openForWriting(last.path, create: false, exclusive: false)
                activeSize = try io.fileSize(activeFD)
                if let torn = scan.tornTail {
                    precondition(torn.file == last.path && torn.byteOffset <= activeSize)
                    bytesCut = activeSize - torn.byteOffset
                    try io.ftruncate(activeFD, length: torn.byteOffset)
                    try io.fsync(activeFD)
                    activeSize = torn.byteOffset
                }
            } catch {
                if activeFD >= 0 { io.close(activeFD) }
                io.unlockAndClose(lockFD)
                throw LedgerError.wrapping(error)
            }
        }
        recoveryReport = RecoveryReport(
            segmentCount: scan.segments.count, lastBatchNumber: scan.chain.lastNumber,
            lastHash: scan.chain.lastHash, tornTail: scan.tornTail, bytesCut: bytesCut,
            otherFiles: scan.otherFiles)
        state = Mutex(State(
            chain: scan.chain, segments: scan.segments, index: scan.index, activeFD: activeFD,
            activeSize: activeSize, poison: nil, zstd: Zstd(level: limits.zstdLevel)))
    }

    deinit {
        state.withLock { s in
            if s.activeFD >= 0 { io.close(s.activeFD) }
            s.activeFD = -1
        }
        io.unlockAndClose(lockFD)
    }

    static let lockFileName = "LOCK"

    // MARK: - Appending

    /// Makes `batch` durable: checks it (`LedgerError.invalidBatch` leaves the store usable),
    /// writes its record at the end of the active segment (rolling to a new segment past
    /// `segmentBytesMax`) and fdatasyncs. Returns the batch's chain hash. A write or sync error
    /// poisons the store (every later append throws `LedgerError.poisoned`); the partial record is
    /// cut when possible, and recovery cuts it otherwise.
    @discardableResult
    public func append(_ batch: LedgerBatch) throws -> LedgerHash {
        try state.withLock { s throws -> LedgerHash in
            if let poison = s.poison { throw LedgerError.poisoned(reason: poison) }
            if let problem = batch.problem(limits: limits) ?? s.chain.problem(with: batch) {
                throw LedgerError.invalidBatch("batch \(batch.number): \(problem)")
            }
            let (record, hash) = try LedgerRecord.encode(batch, zstd: s.zstd, limits: limits)
            assert(Self.readsBack(record, as: batch, hash: hash, zstd: s.zstd, limits: limits))
            var writeOffset: Int64?
            do {
                if s.activeFD < 0 || (s.activeSize > 0 && s.activeSize + Int64(record.count) > limits.segmentBytesMax) {
                    try roll(&s, firstBatch: batch.number)
                }
                let offset = s.activeSize
                writeOffset = offset
                try writeFully(io, s.activeFD, record, at: offset)
                try io.fdatasync(s.activeFD)
                s.activeSize = offset + Int64(record.count)
                s.chain.advance(with: batch, hash: hash)
                s.index.note(batch: batch.number, segment: s.segments.count - 1, offset: offset,
                             maxEventTimeThroughNanos: s.chain.maxEventTimeNanos)
                return hash
            } catch {
                var reason = "append of batch \(batch.number) failed: \(error)"
                if let writeOffset {
                    // Best effort: take the partial record back so no later reader sees it.
                    do {
                        try io.ftruncate(s.activeFD, length: writeOffset)
                        try io.fsync(s.activeFD)
                    } catch {
                        reason += "; cutting the partial record also failed: \(error)"
                    }
                }
                s.poison = reason
                throw LedgerError.wrapping(error)
            }
        }
    }

    /// Starts a new segment file named for `firstBatch` and makes its creation durable.
    private func roll(_ s: inout State, firstBatch: UInt64) throws {
        let path = ledgerDirectory + "/" + SegmentName.make(firstBatch: firstBatch)
        let fd = try io.openForWriting(path, create: true, exclusive: true)
        do {
            try io.syncDirectory(ledgerDirectory)
        } catch {
            io.close(fd)
            throw error
        }
        if s.activeFD >= 0 { io.close(s.activeFD) }
        s.activeFD = fd
        s.activeSize = 0
        s.segments.append(SegmentInfo(firstBatch: firstBatch, path: path))
    }

    /// Debug builds decode every record before writing it and compare.
    private static func readsBack(_ record: [UInt8], as batch: LedgerBatch, hash: LedgerHash, zstd: Zstd, limits: LedgerLimits) -> Bool {
        let headerBytes = Array(record.prefix(LedgerRecordHeader.byteCount))
        guard case .success(let h) = LedgerRecordHeader.decode(headerBytes, limits: limits), h.hash == hash else { return false }
        guard case .success(let decoded) = LedgerRecord.decode(record, header: h, zstd: zstd, limits: limits) else { return false }
        return decoded == batch
    }

    // MARK: - State

    /// The number of the last durable batch (0 when the ledger is empty).
    public var lastBatchNumber: UInt64 { state.withLock { $0.chain.lastNumber } }

    /// The chain hash of the last durable batch (`LedgerHash.zero` when empty): the
    /// `previousHash` of the next batch.
    public var lastHash: LedgerHash { state.withLock { $0.chain.lastHash } }

    /// The next offset of every input partition any batch covered: where to seek on restart.
    public var nextOffsets: [InputPartition: Int64] { state.withLock { $0.chain.nextOffsets } }

    /// The last ledger sequence number written for `partition` (0 when none).
    public func lastSequence(partition: Int32) -> UInt64 {
        state.withLock { $0.chain.lastSeqByPartition[partition] ?? 0 }
    }

    /// Why appends are refused, when they are.
    public var poisonReason: String? { state.withLock { $0.poison } }

    /// The largest event time of any batch, if any batch had one.
    public var maxEventTimeNanos: Int64? { state.withLock { $0.chain.maxEventTimeNanos } }

    // MARK: - Reading

    /// Reads durable batches in order from batch `first` up to the last batch durable now;
    /// each record's checksum, hash and chain link are checked again as it is read.
    public func batches(from first: UInt64) -> LedgerReader {
        state.withLock { s in
            let start = max(first, 1)
            var segmentIndex = s.segments.count
            var offset: Int64 = 0
            // The last segment whose first batch is at or before `start`.
            if let i = s.segments.lastIndex(where: { $0.firstBatch <= start }) {
                segmentIndex = i
                if let entry = s.index.entry(atOrBefore: start, inSegment: i), entry.batch > s.segments[i].firstBatch {
                    offset = entry.offset
                }
            }
            return LedgerReader(
                io: io, limits: limits, segments: s.segments, startSegment: segmentIndex,
                startOffset: offset, first: start, last: s.chain.lastNumber)
        }
    }

    /// A batch number from which reading finds every batch holding an event at or after `nanos`
    /// (batches before it all end earlier); `lastBatchNumber + 1` when none can.
    public func firstBatchNumber(forEventTimeAtLeast nanos: Int64) -> UInt64 {
        state.withLock { s in
            guard let m = s.chain.maxEventTimeNanos, m >= nanos else { return s.chain.lastNumber + 1 }
            return s.index.scanStart(forEventTimeAtLeast: nanos)
        }
    }

    /// The chain hash of batch `number` (read back from its record), or nil past the end.
    public func hash(ofBatch number: UInt64) throws -> LedgerHash? {
        if number == 0 { return .zero }
        let reader = batches(from: number)
        guard let batch = try reader.next() else { return nil }
        precondition(batch.number == number)
        return reader.lastHash
    }

    // MARK: - Verification

    /// Checks every segment without changing anything: checksums, bodies, hashes, the chain,
    /// sequence and offset continuity. Returns every problem found (empty when the ledger is
    /// sound); a torn last record is a problem too (recovery would cut it).
    public static func verify(
        dataDirectory: String, limits: LedgerLimits = .default, io: any StorageIO = POSIXStorageIO()
    ) -> [LedgerProblem] {
        let ledgerDirectory = dataDirectory + "/ledger"
        do {
            return try LedgerScan.run(ledgerDirectory: ledgerDirectory, io: io, limits: limits, mode: .verify).problems
        } catch {
            return [LedgerProblem(batchNumber: nil, file: ledgerDirectory, byteOffset: 0, reason: "\(error)")]
        }
    }
}
