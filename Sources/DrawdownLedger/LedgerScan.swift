/// What reading every segment found: used by `LedgerStore.open` (which stops at the first
/// problem) and by `LedgerStore.verify` (which notes each problem and reads on).
struct LedgerScan {
    enum Mode { case recover, verify }

    var chain = LedgerChain()
    var segments: [SegmentInfo] = []
    var index: SparseIndex
    /// The torn last record, if any: where it starts in the last segment.
    var tornTail: LedgerProblem?
    var problems: [LedgerProblem] = []
    var otherFiles: [String] = []

    init(limits: LedgerLimits) {
        index = SparseIndex(strideBatches: limits.sparseIndexStrideBatches)
    }

    /// Reads the ledger directory. In `.recover` mode the first problem that is not a torn tail
    /// throws `LedgerError.corrupt`; in `.verify` mode it is noted and reading goes on.
    static func run(ledgerDirectory: String, io: any StorageIO, limits: LedgerLimits, mode: Mode) throws -> LedgerScan {
        var scan = LedgerScan(limits: limits)
        let zstd = Zstd(level: limits.zstdLevel)
        var numbered: [(UInt64, String)] = []
        for name in try io.listDirectory(ledgerDirectory) {
            if let n = SegmentName.parse(name) {
                numbered.append((n, name))
            } else if name != LedgerStore.lockFileName {
                scan.otherFiles.append(name)
            }
        }
        numbered.sort { $0.0 < $1.0 }
        for (i, (first, name)) in numbered.enumerated() {
            let path = ledgerDirectory + "/" + name
            scan.segments.append(SegmentInfo(firstBatch: first, path: path))
            try scan.read(segment: i, path: path, firstBatch: first, isLast: i == numbered.count - 1,
                          io: io, limits: limits, zstd: zstd, mode: mode)
        }
        return scan
    }

    private mutating func report(_ problem: LedgerProblem, mode: Mode) throws {
        if mode == .recover { throw LedgerError.corrupt(problem) }
        problems.append(problem)
    }

    private mutating func read(
        segment: Int, path: String, firstBatch: UInt64, isLast: Bool,
        io: any StorageIO, limits: LedgerLimits, zstd: Zstd, mode: Mode
    ) throws {
        let fd = try io.openForReading(path)
        defer { io.close(fd) }
        let size = try io.fileSize(fd)
        var scanner = SegmentScanner(io: io, fd: fd, fileSize: size, limits: limits, zstd: zstd)
        var recordsRead = 0
        loop: while true {
            switch try scanner.next() {
            case .end:
                break loop
            case .record(let batch, let header, let offset):
                if recordsRead == 0 && batch.number != firstBatch {
                    try report(LedgerProblem(
                        batchNumber: batch.number, file: path, byteOffset: offset,
                        reason: "segment named for batch \(firstBatch) starts with batch \(batch.number)"), mode: mode)
                }
                if let problem = chain.problem(with: batch) {
                    try report(LedgerProblem(batchNumber: batch.number, file: path, byteOffset: offset, reason: problem), mode: mode)
                }
                chain.advance(with: batch, hash: header.hash)
                index.note(batch: batch.number, segment: segment, offset: offset,
                           maxEventTimeThroughNanos: chain.maxEventTimeNanos)
                recordsRead += 1
            case .damaged(let damage):
                let problem = LedgerProblem(
                    batchNumber: damage.header?.batchNumber ?? chain.lastNumber + 1, file: path,
                    byteOffset: damage.offset, reason: damage.reason)
                if isLast && damage.couldBeTornWrite {
                    tornTail = problem
                    if mode == .verify {
                        problems.append(LedgerProblem(
                            batchNumber: problem.batchNumber, file: path, byteOffset: damage.offset,
                            reason: "torn last record (a crash mid-write; recovery cuts it): \(damage.reason)"))
                    }
                    break loop
                }
                try report(problem, mode: mode)
                chain.forgetBaseline()
                guard let resume = damage.resumeOffset else { break loop }
                scanner.skip(to: resume)
            }
        }
        if recordsRead == 0 {
            if !isLast {
                try report(LedgerProblem(batchNumber: firstBatch, file: path, byteOffset: 0,
                                         reason: "segment holds no record but is not the last"), mode: mode)
            } else if firstBatch != chain.lastNumber + 1 {
                try report(LedgerProblem(
                    batchNumber: firstBatch, file: path, byteOffset: 0,
                    reason: "empty last segment is named for batch \(firstBatch), the ledger ends at \(chain.lastNumber)"), mode: mode)
            }
        }
    }
}
