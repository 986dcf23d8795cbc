import ArgumentParser
import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import Foundation

/// `drawdown replay`: re-rate a range of the ledger with a price book, report what every
/// customer would be charged differently, and (with --apply) write the difference as `adjust`
/// entries in a new correction batch. See docs/replay.md.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Re-rate a range of the ledger with a price book: report the differences (--dry-run) or write them as adjust entries (--apply).",
        discussion: """
            Restores the engine state as it was before --from (snapshot plus ledger), re-applies \
            the input records the ledger holds for the range, in the order they were applied, \
            with --prices (default: the data directory's price book), and compares the result \
            with what the ledger committed: per customer and currency, charges, overage and \
            available balance, totals, and the events whose charge changed most. POSITION: \
            beginning, end, batch:N (or N), P:OFFSET[,P:OFFSET…] (partitions of the first \
            --topic; TOPIC:P:OFFSET names another), or an RFC 3339 time (resolved through the \
            ledger's event-time index). --apply needs the range to reach the ledger's end and \
            the processor stopped (it takes the data directory's lock); it appends one \
            correction batch, publishes its balance changes, and saves the new price book as \
            the data directory's. Applying the same replay again writes nothing. Exit status 0 \
            on success, 1 on an error, 2 when --apply is refused.
            """)

    @Option(help: "Bootstrap servers, comma-separated host:port (needed by --apply to publish balance changes).")
    var brokers: String?
    @Option(name: .customLong("topic"), help: "Input topic (repeatable); offsets without a topic are for the first.")
    var topics: [String] = []
    @Option(name: .customLong("data-dir"), help: "The processor's data directory (holds ledger/).") var dataDir: String
    @Option(help: "Where the replay starts (the state before it is restored).") var from: String
    @Option(help: "Where it ends (default: the ledger's end).") var to: String?
    @Option(help: "Price book (JSON) to replay with (default: the data directory's).") var prices: String?
    @Flag(name: .customLong("dry-run"), help: "Report only; change nothing (no lock taken).") var dryRun = false
    @Flag(help: "Write the differences as adjust entries in a new correction batch.") var apply = false
    @Option(help: "Write the report as JSON to this file.") var report: String?
    @Option(name: .customLong("top-events"), help: "How many of the most changed events to report.") var topEvents = 20
    @Option(name: .customLong("balance-topic")) var balanceTopic = "balance-changes"
    @Option(name: .customLong("alert-topic")) var alertTopic = "alerts"
    @Option(name: .customLong("dead-letter-topic")) var deadLetterTopic = "drawdown.dead-letters"

    func validate() throws {
        if topics.isEmpty { throw ValidationError("give at least one --topic") }
        if dryRun == apply { throw ValidationError("give exactly one of --dry-run and --apply") }
        if apply && brokers == nil { throw ValidationError("--apply needs --brokers (its balance changes are published)") }
        if topEvents < 0 { throw ValidationError("--top-events must be 0 or more") }
    }

    func run() throws {
        do {
            try replay()
        } catch let error as ExitCode {
            throw error
        } catch let error as ReplayError {
            printError("drawdown replay: \(error)")
            if case .refused = error { throw ExitCode(2) }
            throw ExitCode(1)
        } catch {
            printError("drawdown replay: \(error)")
            throw ExitCode(1)
        }
    }

    private func replay() throws {
        let ledger: LedgerStore
        let snapshots: SnapshotStore?
        if apply {
            do {
                ledger = try LedgerStore.open(dataDirectory: dataDir)
            } catch LedgerError.alreadyOpen(let lockFile) {
                throw ReplayError.refused(
                    "the data directory is in use (\(lockFile) is locked): stop `drawdown run` first; --apply writes to the ledger")
            }
            snapshots = try SnapshotStore(dataDirectory: dataDir)
        } else {
            ledger = try openLedgerReadOnly(dataDirectory: dataDir)
            snapshots = try? SnapshotStore(dataDirectory: dataDir, io: ReadOnlyStorageIO())
        }
        let settings = try EngineSettings.load(dataDirectory: dataDir) ?? EngineSettings(config: EngineConfig(), priceBook: nil)
        let replaySettings = try prices.map { try EngineSettings(config: settings.config, priceBookJSON: readAll($0, what: "price book")) }
            ?? settings
        let ledgerTopics = Set(ledger.nextOffsets.keys.map(\.topic))
        let unknown = ledgerTopics.subtracting(topics)
        if !unknown.isEmpty {
            printError("drawdown replay: note: the ledger also holds input from \(unknown.sorted().joined(separator: ", ")) (replayed too)")
        }

        let fromBatch = try ReplayPosition.parse(from, defaultTopic: topics[0]).resolve(in: ledger)
        let endBatch = try to.map { try ReplayPosition.parse($0, defaultTopic: topics[0]).resolve(in: ledger) } ?? ledger.lastBatchNumber + 1
        guard endBatch >= fromBatch else {
            throw ReplayError.refused("--to (before batch \(endBatch)) is before --from (batch \(fromBatch))")
        }

        var publisher: ReplayPublisher?
        if apply, let brokers {
            var config = KafkaProducerConfig(bootstrapServers: brokers)
            config.clientID = "drawdown-replay"
            publisher = ReplayPublisher(
                producer: try KafkaProducer(config: config), balanceTopic: balanceTopic, alertTopic: alertTopic,
                deadLetterTopic: deadLetterTopic)
            // A processor or an earlier apply that stopped before its outputs were confirmed.
            let resent = try Replay.publishPending(ledger: ledger, snapshots: snapshots, settings: settings) { try publisher!.publish($0) }
            if resent > 0 { printError("drawdown replay: re-sent \(resent) output record(s) of batches not yet published") }
        }

        let progress = ProgressLine()
        let result = try Replay.run(
            ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings, fromBatch: fromBatch,
            throughBatch: endBatch - 1, topEvents: topEvents, progress: progress.update)
        progress.finish(result)

        var applied: ReplayApplied?
        var refusal: (any Error)?
        if apply, let publisher {
            let crashAt = ProcessInfo.processInfo.environment["DRAWDOWN_REPLAY_KILL_AT"]
            do {
                applied = try Replay.apply(
                    result, ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings,
                    publish: { try publisher.publish($0) },
                    checkpoint: { step in
                        // Test hook: kill -9 this process at a chosen step (the crash tests).
                        if step.rawValue == crashAt { kill(getpid(), SIGKILL) }
                    })
                if applied == nil { try Replay.finishInterruptedApply(ledger: ledger, replaySettings: replaySettings) }
            } catch let error as ReplayError {
                guard case .refused = error else { throw error }
                refusal = error  // still print and write the report
            }
        }
        if let report {
            let bytes = result.reportJSON(mode: apply ? "apply" : "dry-run", applied: applied)
            guard FileManager.default.createFile(atPath: report, contents: Data(bytes)) else {
                throw CLIError("cannot write the report to \(report)")
            }
        }
        var text = result.table()
        if apply {
            if refusal != nil {
                text += "applied: nothing (refused)\n"
            } else if let applied {
                text += "applied: correction \(applied.id) as batch \(applied.batch): \(applied.entries) adjust entr\(applied.entries == 1 ? "y" : "ies"), \(applied.outputs) balance change(s) published\n"
            } else {
                text += "applied: nothing (no difference left to correct)\n"
            }
        }
        let stdout = OutputFile.standardOutput()
        stdout.write(Array(text.utf8))
        stdout.flush()
        if let refusal { throw refusal }
    }
}

/// Progress on standard error: a line rewritten in place on a terminal, else a line every 5 s.
final class ProgressLine {
    private let isTerminal = isatty(2) == 1
    private var lastPrint = DispatchTime.now().uptimeNanoseconds
    private var printed = false

    func update(_ p: ReplayProgress) {
        let now = DispatchTime.now().uptimeNanoseconds
        let interval: UInt64 = isTerminal ? 200_000_000 : 5_000_000_000
        guard now - lastPrint >= interval || (isTerminal && p.batchesDone == p.batchesTotal && printed) else { return }
        lastPrint = now
        printed = true
        let rate = p.seconds > 0 ? Double(p.records) / p.seconds : 0
        let fraction = p.batchesTotal > 0 ? Double(p.batchesDone) / Double(p.batchesTotal) : 1
        let left = fraction > 0 ? p.seconds * (1 - fraction) / fraction : 0
        let line = String(
            format: "replay: %d/%d batches, %d records, %.0f events/s, %.0f s left", p.batchesDone, p.batchesTotal, p.records, rate, left)
        FileHandle.standardError.write(Data((isTerminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    func finish(_ result: ReplayResult) {
        if isTerminal && printed { FileHandle.standardError.write(Data("\n".utf8)) }
        let rate = result.replaySeconds > 0 ? Double(result.recordsReplayed) / result.replaySeconds : 0
        printError(
            String(
                format: "replay: state before batch %llu restored in %.2f s; %d batch(es), %d record(s) replayed in %.2f s (%.0f events/s)",
                result.fromBatch, result.restoreSeconds, result.batchesReplayed, result.recordsReplayed, result.replaySeconds, rate))
    }
}
