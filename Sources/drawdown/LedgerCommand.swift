import ArgumentParser
import DrawdownCore
import DrawdownLedger
import Foundation

/// `drawdown ledger`: prints the durable ledger (`print`, the default) or checks it (`verify`).
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Print or verify the durable ledger under a data directory.",
        discussion: """
            Both subcommands only read: they take no lock (they can run beside a live \
            processor) and change nothing, not even a torn last record, which the next \
            `drawdown run` cuts.
            """,
        subcommands: [LedgerPrintCommand.self, LedgerVerifyCommand.self],
        defaultSubcommand: LedgerPrintCommand.self)
}

/// `drawdown ledger [print] --data-dir DIR [--customer ID]`.
struct LedgerPrintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print",
        abstract: "Print ledger entries as JSON lines (SPEC §7 shape plus \"partition\").",
        discussion: """
            Entries come in ledger order: batch by batch, and within a batch partition \
            section by section. A torn last record (a crash mid-write) is left out and noted \
            on standard error. Exit status 0 when the ledger was read to its end; 1 when it \
            cannot be read (missing, corrupt).
            """)

    @Option(name: .customLong("data-dir"), help: "The processor's data directory (holds ledger/).")
    var dataDir: String

    @Option(help: "Only this customer's entries.")
    var customer: String?

    func run() throws {
        let store = try openLedgerReadOnly(dataDirectory: dataDir)
        if let torn = store.recoveryReport.tornTail {
            printError("drawdown ledger: the last record is torn (a crash mid-write) and left out: \(torn)")
        }
        let stdout = OutputFile.standardOutput()
        let reader = store.batches(from: 1)
        var line: [UInt8] = []
        line.reserveCapacity(1 << 16)
        while let batch = try reader.next() {
            if batch.kind == .marker && batch.payload.isEmpty { continue }
            let payload: BatchPayload
            do {
                payload = try BatchPayload.decode(batch.payload)
            } catch {
                stdout.flush()
                throw CLIError("batch \(batch.number): payload does not decode: \(error.description)")
            }
            for section in payload.sections {
                for entry in section.entries where customer == nil || entry.customer == customer {
                    entry.appendJSON(to: &line, partition: section.partition)
                    line.append(0x0A)
                    if line.count >= 1 << 16 {
                        stdout.write(line)
                        line.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        stdout.write(line)
        stdout.flush()
    }
}

/// `drawdown ledger verify --data-dir DIR`.
struct LedgerVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the ledger: checksums, hash chain, sequences, offsets and balance invariants.",
        discussion: """
            First the storage checks of LedgerStore.verify (record and header checksums, \
            the hash chain, batch numbering, sequence ranges, offsets), then every batch's \
            payload is decoded and the ledger's invariants are recomputed from the entries: \
            per partition, seqs are contiguous from 1 and match the batch's sequence ranges; \
            inputs lie within the offsets the batch covers and are never applied twice; per \
            grant, amount − draws − expired − voided = remaining ≥ 0 after every entry; per \
            usage event, draws are negative, an overage is positive and comes last; every \
            entry's balance is the customer's available balance recomputed from the entries. \
            Prints one line per problem (batch, partition, seq, what is wrong) and exits 1, or \
            prints a one-line summary and exits 0.
            """)

    @Option(name: .customLong("data-dir"), help: "The processor's data directory (holds ledger/).")
    var dataDir: String

    @Option(name: .customLong("max-problems"), help: "Print at most this many problems (all are counted).")
    var maxProblems: Int = 200

    func run() throws {
        guard FileManager.default.fileExists(atPath: dataDir + "/ledger") else {
            throw CLIError("no ledger under \(dataDir) (expected \(dataDir)/ledger)")
        }
        var lines: [String] = []
        var problemCount = 0
        func note(_ text: String) {
            problemCount += 1
            if lines.count < max(maxProblems, 0) { lines.append(text) }
        }

        // 1. Storage: every record, read on past damage.
        let storageProblems = LedgerStore.verify(dataDirectory: dataDir)

        // 2. Payloads and invariants, over every batch that recovery would keep.
        var auditor = LedgerAuditor()
        var auditSkipped: String?
        var tornTail: LedgerProblem?
        do {
            let store = try openLedgerReadOnly(dataDirectory: dataDir)
            tornTail = store.recoveryReport.tornTail
            let reader = store.batches(from: 1)
            while let batch = try reader.next() { auditor.check(batch) }
        } catch {
            auditSkipped = "\(error)"
        }

        for problem in storageProblems {
            if let tornTail, problem.file == tornTail.file, problem.byteOffset == tornTail.byteOffset {
                note("torn tail: \(problem) (the next `drawdown run` cuts it)")
            } else {
                note("storage: \(problem)")
            }
        }
        for problem in auditor.problems { note(problem.description) }
        if let auditSkipped, !storageProblems.isEmpty {
            lines.append("invariant checks were not run: \(auditSkipped)")
        } else if let auditSkipped {
            note("cannot read the ledger: \(auditSkipped)")
        }
        let stdout = OutputFile.standardOutput()
        for line in lines { stdout.write(Array((line + "\n").utf8)) }
        if problemCount == 0 {
            stdout.write(Array((auditor.summary + "\n").utf8))
            stdout.flush()
            return
        }
        if problemCount > lines.count { stdout.write(Array("… \(problemCount - lines.count) more problem(s) not shown\n".utf8)) }
        stdout.write(Array("ledger verify FAILED: \(problemCount) problem(s) in \(dataDir)\n".utf8))
        stdout.flush()
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Opens the ledger under `dataDirectory` for reading only (see `ReadOnlyStorageIO`).
func openLedgerReadOnly(dataDirectory: String) throws -> LedgerStore {
    guard FileManager.default.fileExists(atPath: dataDirectory + "/ledger") else {
        throw CLIError("no ledger under \(dataDirectory) (expected \(dataDirectory)/ledger)")
    }
    do {
        return try LedgerStore.open(dataDirectory: dataDirectory, io: ReadOnlyStorageIO())
    } catch let error as LedgerError {
        throw CLIError("\(error)")
    }
}

// MARK: - ReadOnlyStorageIO

/// `StorageIO` that changes nothing on disk, so the read-only commands can use
/// `LedgerStore.open` and its checked reader without disturbing a live processor: the lock is
/// not taken (a descriptor on /dev/null stands in for it), the cut of a torn last record and
/// every sync are no-ops (the store still reads only the batches before the torn one), and
/// anything that would write fails with EROFS. A missing directory is an error, not created.
struct ReadOnlyStorageIO: StorageIO {
    private let base = POSIXStorageIO()

    private func refuse(_ operation: String, _ path: String) -> StorageError {
        StorageError(operation: operation + " (read-only)", path: path, errno: EROFS)
    }

    func openForReading(_ path: String) throws -> Int32 { try base.openForReading(path) }
    func openForWriting(_ path: String, create: Bool, exclusive: Bool) throws -> Int32 {
        if create { throw refuse("create", path) }
        return try base.openForReading(path)
    }
    func close(_ fd: Int32) { base.close(fd) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try base.pread(fd, into: buffer, at: offset)
    }
    func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws -> Int {
        throw refuse("pwrite", "fd \(fd)")
    }
    func fdatasync(_ fd: Int32) throws {}
    func fsync(_ fd: Int32) throws {}
    func ftruncate(_ fd: Int32, length: Int64) throws {}
    func fileSize(_ fd: Int32) throws -> Int64 { try base.fileSize(fd) }
    func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StorageError(operation: "open directory", path: path, errno: ENOENT)
        }
    }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func rename(_ from: String, to: String) throws { throw refuse("rename", from) }
    func removeFile(_ path: String) throws { throw refuse("unlink", path) }
    func syncDirectory(_ path: String) throws {}
    func lockExclusive(_ path: String) throws -> Int32 {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw StorageError(operation: "open", path: "/dev/null", errno: errno) }
        return fd
    }
    func unlockAndClose(_ fd: Int32) { base.close(fd) }
}

// MARK: - LedgerAuditor

/// Recomputes the ledger's invariants from its batches, in order (what `ledger verify` checks
/// beyond storage). Sound by construction: it only flags what the entries themselves prove
/// wrong, and where they cannot decide (an `adjust` entry, a grant whose effectiveness could
/// not be told) it skips the check rather than guess.
struct LedgerAuditor {
    struct Problem: CustomStringConvertible {
        var batch: UInt64
        var partition: Int32?
        var seq: UInt64?
        var reason: String

        var description: String {
            var s = "batch \(batch)"
            if let partition { s += ", partition \(partition)" }
            if let seq { s += ", seq \(seq)" }
            return s + ": " + reason
        }
    }

    private struct BalanceKey: Hashable {
        var partition: Int32
        var customer: String
        var currency: String
    }

    private struct GrantKey: Hashable {
        var partition: Int32
        var customer: String
        var grant: String
    }

    private enum GrantStatus { case pending, active, unknown, expired, voided }

    private struct GrantTrack {
        var currency: String
        var amount: Credits
        var drawn: Credits = .zero
        var expired: Credits = .zero
        var voided: Credits = .zero
        var status: GrantStatus
        /// False once an `adjust` touched it: its remaining is no longer known from entries.
        var exact = true

        var remaining: Credits { amount - drawn - expired - voided }
        var isTerminal: Bool { status == .expired || status == .voided }
    }

    /// The usage event whose draws and overage are being read (entries of one message are
    /// consecutive within their partition).
    private struct UsageRun: Equatable {
        var customer: String
        var currency: String
        var source: String
        var timestampNanos: Int64
        var hasOverage: Bool
    }

    private(set) var problems: [Problem] = []
    private var lastSeq: [Int32: UInt64] = [:]
    private var nextOffsets: [InputPartition: Int64] = [:]
    private var lastInputOffsets: [InputPartition: Int64] = [:]
    private var balances: [BalanceKey: Credits] = [:]
    private var grants: [GrantKey: GrantTrack] = [:]
    private var usageRuns: [Int32: UsageRun] = [:]
    /// Set once a payload could not be decoded: entry-level state is unknown after it.
    private var entriesLostAt: UInt64?

    private(set) var batchCount = 0
    private(set) var lastBatchNumber: UInt64 = 0
    private(set) var entryCount = 0
    private(set) var inputCount = 0

    var summary: String {
        "ledger ok: \(batchCount) batches (last \(lastBatchNumber)), \(entryCount) entries over \(lastSeq.count) partition(s), "
            + "\(inputCount) inputs, \(grants.count) grants, \(balances.count) balances; checksums, chain and invariants hold"
    }

    private mutating func flag(_ batch: UInt64, _ partition: Int32?, _ seq: UInt64?, _ reason: String) {
        problems.append(Problem(batch: batch, partition: partition, seq: seq, reason: reason))
    }

    mutating func check(_ batch: LedgerBatch) {
        batchCount += 1
        lastBatchNumber = batch.number
        let n = batch.number

        // Positions never go back.
        var covered: [InputPartition: Int64] = [:]
        for position in batch.positions {
            let key = InputPartition(topic: position.topic, partition: position.partition)
            covered[key] = position.nextOffset
            if let previous = nextOffsets[key], position.nextOffset < previous {
                flag(n, position.partition, nil, "next offset of \(position.topic)/\(position.partition) goes back from \(previous) to \(position.nextOffset)")
            }
        }
        defer {
            for (key, offset) in covered { nextOffsets[key] = max(nextOffsets[key] ?? offset, offset) }
        }

        // A marker batch (kind 3) may carry no payload at all.
        if batch.kind == .marker && batch.payload.isEmpty { return }
        let payload: BatchPayload
        do {
            payload = try BatchPayload.decode(batch.payload)
        } catch {
            flag(n, nil, nil, "payload does not decode: \(error.description)")
            if entriesLostAt == nil { entriesLostAt = n }
            return
        }

        // Inputs: within what this batch covers, after what earlier batches covered, in order.
        for section in payload.sections {
            inputCount += section.inputs.count
            for input in section.inputs {
                let key = InputPartition(topic: input.topic, partition: section.partition)
                guard let next = covered[key] else {
                    flag(n, section.partition, nil, "input \(input.topic)/\(section.partition)@\(input.offset) is not covered by the batch's positions")
                    continue
                }
                if input.offset >= next {
                    flag(n, section.partition, nil, "input \(input.topic)/\(section.partition)@\(input.offset) is at or past the batch's next offset \(next)")
                }
                if let earlier = nextOffsets[key], input.offset < earlier {
                    flag(n, section.partition, nil, "input \(input.topic)/\(section.partition)@\(input.offset) was already covered by an earlier batch (next offset \(earlier)): applied twice")
                }
                if let last = lastInputOffsets[key], input.offset <= last {
                    flag(n, section.partition, nil, "input \(input.topic)/\(section.partition)@\(input.offset) does not come after offset \(last)")
                }
                lastInputOffsets[key] = input.offset
            }
        }

        guard entriesLostAt == nil else { return }

        // Sequences: contiguous per partition, and what the batch's ranges say.
        var seen: [Int32: (first: UInt64, last: UInt64)] = [:]
        for section in payload.sections {
            let p = section.partition
            for entry in section.entries {
                entryCount += 1
                let expected = (lastSeq[p] ?? 0) + 1
                if entry.seq != expected {
                    let what = entry.seq > expected ? "a gap" : "a repeat"
                    flag(n, p, entry.seq, "seq \(entry.seq) where \(expected) was expected (\(what))")
                }
                lastSeq[p] = entry.seq
                if let range = seen[p] {
                    seen[p] = (range.first, entry.seq)
                } else {
                    seen[p] = (entry.seq, entry.seq)
                }
                checkEntry(entry, partition: p, batch: n)
            }
        }
        var ranges: [Int32: SequenceRange] = [:]
        for range in batch.sequenceRanges { ranges[range.partition] = range }
        for (p, got) in seen.sorted(by: { $0.key < $1.key }) {
            guard let range = ranges[p] else {
                flag(n, p, got.first, "entries \(got.first)…\(got.last) but the batch has no sequence range for partition \(p)")
                continue
            }
            if range.firstSeq != got.first || range.lastSeq != got.last {
                flag(n, p, got.first, "entries \(got.first)…\(got.last) but the batch's sequence range says \(range.firstSeq)…\(range.lastSeq)")
            }
        }
        for (p, range) in ranges.sorted(by: { $0.key < $1.key }) where seen[p] == nil {
            flag(n, p, range.firstSeq, "sequence range \(range.firstSeq)…\(range.lastSeq) but no entries for partition \(p)")
        }
    }

    /// One entry against the grants and balances recomputed so far.
    private mutating func checkEntry(_ e: LedgerEntry, partition p: Int32, batch n: UInt64) {
        let balanceKey = BalanceKey(partition: p, customer: e.customer, currency: e.currency)
        let before = balances[balanceKey] ?? .zero
        balances[balanceKey] = e.balance
        func bad(_ reason: String) { flag(n, p, e.seq, "\(e.type.rawValue) of \(e.customer)/\(e.currency): \(reason)") }
        /// The balance must be `before + delta`; nil skips the check (undecidable).
        func expectBalance(_ delta: Credits?, _ why: String) {
            guard let delta else { return }
            let expected = before + delta
            if e.balance != expected {
                bad("balance \(e.balance) but \(expected) was expected (\(before) before, \(why))")
            }
        }
        if e.balance.isNegative { bad("negative available balance \(e.balance)") }

        // Usage runs: draws then at most one overage, per message.
        if e.type == .draw || e.type == .overage {
            let run = UsageRun(customer: e.customer, currency: e.currency, source: e.source, timestampNanos: e.timestamp.nanos, hasOverage: false)
            if var current = usageRuns[p], current.customer == run.customer, current.currency == run.currency,
                current.source == run.source, current.timestampNanos == run.timestampNanos
            {
                if current.hasOverage { bad("usage \(e.source) has entries after its overage") }
                current.hasOverage = current.hasOverage || e.type == .overage
                usageRuns[p] = current
            } else {
                var fresh = run
                fresh.hasOverage = e.type == .overage
                usageRuns[p] = fresh
            }
        } else {
            usageRuns[p] = nil
        }

        let grantKey = e.grant.map { GrantKey(partition: p, customer: e.customer, grant: $0) }
        var track = grantKey.flatMap { grants[$0] }
        defer { if let grantKey, let track { grants[grantKey] = track } }
        func needGrant() -> Bool {
            guard let id = e.grant else {
                bad("no grant")
                return false
            }
            guard let t = track else {
                bad("grant \(id) was never granted")
                return false
            }
            if t.currency != e.currency {
                bad("grant \(id) is in \(t.currency)")
                return false
            }
            return true
        }

        switch e.type {
        case .grant:
            guard let id = e.grant else { return bad("no grant id") }
            if !e.amount.isPositive { bad("amount \(e.amount) is not positive") }
            if e.source != id { bad("source \(e.source) is not the grant's id \(id)") }
            if track != nil { return bad("grant \(id) was granted before") }
            let delta = e.balance - before
            let status: GrantStatus
            if delta == e.amount {
                status = .active
            } else if delta.isZero {
                status = .pending
            } else {
                status = .unknown
                bad("balance \(e.balance) is neither \(before + e.amount) (effective grant) nor \(before) (pending grant)")
            }
            track = GrantTrack(currency: e.currency, amount: e.amount, status: status)

        case .draw:
            if !e.amount.isNegative { bad("amount \(e.amount) is not negative") }
            expectBalance(e.amount, "a draw")
            guard needGrant(), var t = track else { return }
            switch t.status {
            case .pending: bad("draws from grant \(e.grant!) before it is effective")
            case .expired, .voided: bad("draws from grant \(e.grant!) after it was \(t.status)")
            case .active, .unknown: break
            }
            t.drawn -= e.amount
            if t.exact, t.remaining.isNegative { bad("grant \(e.grant!) overdrawn: remaining \(t.remaining)") }
            track = t

        case .overage:
            if !e.amount.isPositive { bad("amount \(e.amount) is not positive") }
            if e.grant != nil { bad("an overage names a grant") }
            expectBalance(.zero, "an overage")

        case .expire, .void:
            if !e.amount.isNegative { bad("amount \(e.amount) is not negative") }
            guard needGrant(), var t = track else { return }
            if e.type == .expire, e.source != e.grant { bad("source \(e.source) is not the grant's id") }
            if t.isTerminal { return bad("grant \(e.grant!) was already \(t.status)") }
            if t.exact, -e.amount != t.remaining {
                bad("removes \(-e.amount) but grant \(e.grant!) had \(t.remaining) left")
            }
            switch t.status {
            case .active: expectBalance(e.amount, "an effective grant's remainder removed")
            case .pending: expectBalance(.zero, "a pending grant removed")
            default: break
            }
            if e.type == .expire { t.expired -= e.amount } else { t.voided -= e.amount }
            t.status = e.type == .expire ? .expired : .voided
            track = t

        case .activate:
            if !e.amount.isZero { bad("amount \(e.amount) is not 0") }
            guard needGrant(), var t = track else { return }
            if e.source != e.grant { bad("source \(e.source) is not the grant's id") }
            switch t.status {
            case .pending, .unknown:
                expectBalance(t.exact && t.status == .pending ? t.remaining : nil, "grant \(e.grant!) becoming effective")
            case .active: bad("grant \(e.grant!) was already effective")
            case .expired, .voided: bad("grant \(e.grant!) was already \(t.status)")
            }
            t.status = .active
            track = t

        case .adjust:
            // A correction's effect on a grant is not decidable from entries alone.
            if var t = track {
                t.exact = false
                track = t
            }
        }
    }
}
