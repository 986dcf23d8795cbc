import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation
import Logging
import Metrics
import Synchronization

/// What a run did so far, shared by the committer and the publisher.
struct RunStats: Sendable {
    var records = 0
    var batches = 0
    var outputs = 0
    /// fdatasyncs of ledger appends plus fsyncs of `published` marker replacements.
    var fsyncs = 0
    var ledgerBytes: Int64 = 0
    var produceErrors = 0
    var durable = LatencyFigures()
    var delivered = LatencyFigures()
}

/// `RunStats` shared by reference between the committer, the publisher and `Pipeline.run`.
final class SharedRunStats: Sendable {
    let value = Mutex(RunStats())
}

/// Closes ledger batches on its own thread: takes every shard's pending sections (a
/// `queue.sync` barrier per shard), appends one `LedgerBatch` (pwrite + fdatasync), and only
/// then hands the batch's outputs to the `Publisher`, which delivers them, records
/// "published through N" and commits the offsets while the committer already closes the
/// next batch. A storage error stops the committer for good before anything of that batch
/// leaves.
///
/// Every `snapshotEveryBatches` batches it also takes the engines at that same barrier; the
/// publisher writes them as a snapshot once the batch is published (`SnapshotStore`).
///
/// `@unchecked Sendable`: `batchesSinceSnapshot` and `ledgerFiles` are only touched on the
/// committer thread; everything shared is an atomic, a `Mutex`, or a `Sendable` handle.
final class Committer: @unchecked Sendable {
    let config: PipelineConfig
    let logger: Logger
    let ledger: LedgerStore
    let shards: [Shard]
    let uncommitted: SharedCounter
    let publisher: Publisher
    let metrics: PipelineMetrics
    let stats: SharedRunStats
    private var batchesSinceSnapshot = 0
    private var ledgerFiles = LedgerFileSizes()
    /// The engines' applied and duplicate counts at the last barrier (metrics count the increase).
    private var lastTotals: (applied: UInt64, duplicates: UInt64)
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let failureMessage = Mutex<String?>(nil)

    init(
        config: PipelineConfig, logger: Logger, ledger: LedgerStore, shards: [Shard], uncommitted: SharedCounter,
        publisher: Publisher, metrics: PipelineMetrics, stats: SharedRunStats, recovered: [PartitionEngine]
    ) {
        lastTotals = (recovered.reduce(0) { $0 + $1.applied }, recovered.reduce(0) { $0 + $1.duplicates })
        self.config = config
        self.logger = logger
        self.ledger = ledger
        self.shards = shards
        self.uncommitted = uncommitted
        self.publisher = publisher
        self.metrics = metrics
        self.stats = stats
        ledgerFiles.refresh(ledger.ledgerDirectory)
    }

    /// Why the committer or the publisher stopped, if one failed.
    var failure: String? { failureMessage.withLock { $0 } ?? publisher.failure }

    /// The committer thread's body.
    func runLoop() {
        var lastClose = DispatchTime.now().uptimeNanoseconds
        let intervalNanos = UInt64(max(1, config.batchIntervalMs)) * 1_000_000
        while true {
            if publisher.failure != nil { break }
            let finishing = stopping.load(ordering: .acquiring)
            let waiting = uncommitted.value.load(ordering: .relaxed)
            let now = DispatchTime.now().uptimeNanoseconds
            let due = finishing || waiting >= config.batchEventsMax || (waiting > 0 && now - lastClose >= intervalNanos)
            if !due {
                // 1 ms: well under --batch-interval, and 5 times fewer wake-ups than 200 µs
                // (each costs a context switch; they were ~10 % of this thread's CPU).
                usleep(1_000)
                continue
            }
            do {
                try closeBatch()
            } catch {
                failureMessage.withLock { $0 = "\(error)" }
                logger.error("batch failed, stopping without publishing or committing it: \(error)")
                break
            }
            lastClose = DispatchTime.now().uptimeNanoseconds
            if finishing { break }
        }
        done.signal()
    }

    /// Called by the poll thread after its last hand-off: one last batch, then the thread
    /// ends; then every durable batch's outputs are delivered and the producer flushed.
    func finish() {
        stopping.store(true, ordering: .releasing)
        done.wait()
        publisher.finish()
    }

    /// One batch: barrier, append, hand over to the publisher.
    private func closeBatch() throws {
        var sections: [PendingSection] = []
        var sources: [[KafkaRecordBatch]] = []
        var outputs = OutputBuffer()
        var events = 0
        var engines: [PartitionEngine] = []
        var views: [ProcessorStatus.DurableCustomer] = []
        var handOffs: [HandOff] = []
        var rejects = RecordApplier.RejectCounts()
        var progress = BatchProgress()
        let snapshotDue = config.snapshotEveryBatches > 0 && batchesSinceSnapshot + 1 >= config.snapshotEveryBatches
        for shard in shards {
            var take = shard.queue.sync { shard.take(withEngines: snapshotDue) }
            engines.append(contentsOf: take.engines)
            for i in take.sections.indices { take.sections[i].source = sources.count }
            sources.append(take.batches)
            sections.append(contentsOf: take.sections)
            outputs.append(contentsOf: take.outputs)
            views.append(contentsOf: take.views)
            handOffs.append(contentsOf: take.handOffs)
            rejects.add(take.rejectsByReason)
            events += take.events
            progress.applied += take.applied
            progress.duplicates += take.duplicates
            progress.rejected += take.rejected
        }
        for (s, shard) in shards.enumerated() {
            metrics.shardQueueDepth[s].record(shard.pendingEvents.load(ordering: .relaxed))
        }
        guard events > 0 else { return }
        sections.sort { $0.partition < $1.partition }

        let number = ledger.lastBatchNumber + 1
        let batch = LedgerBatch.entries(number: number, previousHash: ledger.lastHash, pending: sections, sources: sources)
        assert(
            batch
                == LedgerBatch.entries(
                    number: number, previousHash: ledger.lastHash,
                    sections: sections.map { $0.materialized(sources[$0.source]) }),
            "the batch written from the consumed bytes differs from the one of copied inputs")
        var next: [KafkaTopicPartition: Int64] = [:]
        for position in batch.positions {
            next[KafkaTopicPartition(topic: position.topic, partition: position.partition)] = position.nextOffset
        }
        let appendStarted = DispatchTime.now().uptimeNanoseconds
        let hash = try ledger.append(batch)
        let durableAt = DispatchTime.now().uptimeNanoseconds

        // Durable. Bookkeeping, then the outputs may leave (on the publisher thread).
        let bytes = ledgerFiles.refresh(ledger.ledgerDirectory)
        stats.value.withLock {
            $0.records += events
            $0.batches += 1
            $0.fsyncs += 1
            $0.ledgerBytes += bytes
            $0.durable.add(handOffs, at: durableAt)
        }
        metrics.ledgerFsync.recordNanoseconds(Int64(durableAt - appendStarted))
        metrics.ledgerBatches.increment()
        if bytes > 0 { metrics.ledgerBytes.increment(by: Int(bytes)) }
        metrics.batchRecords.record(events)
        metrics.recordsApplied.increment(by: Int(progress.applied - min(progress.applied, lastTotals.applied)))
        metrics.duplicates.increment(by: Int(progress.duplicates - min(progress.duplicates, lastTotals.duplicates)))
        lastTotals = (progress.applied, progress.duplicates)
        metrics.record(rejects: rejects)
        if let status = config.status {
            for i in views.indices { views[i].batch = number }
            status.recordDurable(batch: number, customers: views)
        }

        progress.batch = number
        progress.records = events
        progress.entries = sections.reduce(0) { $0 + $1.entries.count }
        progress.deadLetters = outputs.spans.reduce(0) { $0 + ($1.kind == .deadLetter ? 1 : 0) }
        batchesSinceSnapshot += 1
        var snapshot: Publisher.Snapshot?
        if snapshotDue {
            batchesSinceSnapshot = 0
            snapshot = Publisher.Snapshot(engines: engines, chainHash: hash)
        }
        publisher.enqueue(
            Publisher.Job(
                number: number, outputs: outputs, offsets: next, progress: progress, snapshot: snapshot, handOffs: handOffs))
    }
}

/// The ledger directory's segment file sizes, to count the bytes each append wrote (the
/// store does not report them). One directory listing per batch.
struct LedgerFileSizes {
    private var total: Int64 = 0

    /// Re-reads the sizes; returns how many bytes were added since the last call.
    @discardableResult
    mutating func refresh(_ directory: String) -> Int64 {
        let fm = FileManager.default
        var sum: Int64 = 0
        for name in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] {
            if let size = (try? fm.attributesOfItem(atPath: directory + "/" + name))?[.size] as? NSNumber {
                sum += size.int64Value
            }
        }
        defer { total = sum }
        return max(0, sum - total)
    }
}
