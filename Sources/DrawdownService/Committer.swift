import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation
import Logging
import Synchronization

/// Closes ledger batches on its own thread: takes every shard's pending sections (a
/// `queue.sync` barrier per shard), appends one `LedgerBatch` (pwrite + fdatasync), and only
/// then publishes the batch's outputs, records "published through N", and commits the next
/// offsets to Kafka. A storage error stops it for good before anything of that batch leaves.
///
/// Every `snapshotEveryBatches` batches it also takes the engines at that same barrier and,
/// once the batch is published, writes them as a snapshot (`SnapshotStore`).
///
/// `@unchecked Sendable`: `batchesSinceSnapshot` is only touched on the committer thread;
/// everything shared is an atomic, a `Mutex`, or a `Sendable` handle.
final class Committer: @unchecked Sendable {
    struct Stats: Sendable {
        var records = 0
        var batches = 0
        var outputs = 0
    }

    let config: PipelineConfig
    let logger: Logger
    let ledger: LedgerStore
    let producer: KafkaProducer
    let consumer: KafkaConsumer
    let shards: [Shard]
    let uncommitted: SharedCounter
    let snapshots: SnapshotStore
    let stats = Mutex(Stats())
    private var batchesSinceSnapshot = 0
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let failureMessage = Mutex<String?>(nil)

    init(
        config: PipelineConfig, logger: Logger, ledger: LedgerStore, producer: KafkaProducer, consumer: KafkaConsumer,
        shards: [Shard], uncommitted: SharedCounter, snapshots: SnapshotStore
    ) {
        self.snapshots = snapshots
        self.config = config
        self.logger = logger
        self.ledger = ledger
        self.producer = producer
        self.consumer = consumer
        self.shards = shards
        self.uncommitted = uncommitted
    }

    /// Why the committer stopped, if it failed.
    var failure: String? { failureMessage.withLock { $0 } }

    /// The committer thread's body.
    func runLoop() {
        var lastClose = DispatchTime.now().uptimeNanoseconds
        let intervalNanos = UInt64(max(1, config.batchIntervalMs)) * 1_000_000
        while true {
            let finishing = stopping.load(ordering: .acquiring)
            let waiting = uncommitted.value.load(ordering: .relaxed)
            let now = DispatchTime.now().uptimeNanoseconds
            let due = finishing || waiting >= config.batchEventsMax || (waiting > 0 && now - lastClose >= intervalNanos)
            if !due {
                usleep(500)
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

    /// Called by the poll thread after its last hand-off: one last batch, then the thread ends.
    func finish() {
        stopping.store(true, ordering: .releasing)
        done.wait()
    }

    /// One batch: barrier, append, publish, mark published, commit offsets.
    private func closeBatch() throws {
        var sections: [PartitionSection] = []
        var outputs: [OutputRecord] = []
        var events = 0
        var engines: [PartitionEngine] = []
        var progress = BatchProgress()
        let snapshotDue = config.snapshotEveryBatches > 0 && batchesSinceSnapshot + 1 >= config.snapshotEveryBatches
        for shard in shards {
            let take = shard.queue.sync { shard.take(withEngines: snapshotDue) }
            engines.append(contentsOf: take.engines)
            sections.append(contentsOf: take.sections)
            outputs.append(contentsOf: take.outputs)
            events += take.events
            progress.applied += take.applied
            progress.duplicates += take.duplicates
            progress.rejected += take.rejected
        }
        guard events > 0 else { return }
        sections.sort { $0.partition < $1.partition }

        var next: [KafkaTopicPartition: Int64] = [:]
        var ranges: [SequenceRange] = []
        var minTime = Int64.max, maxTime = Int64.min
        for section in sections {
            for input in section.inputs {
                let tp = KafkaTopicPartition(topic: input.topic, partition: section.partition)
                next[tp] = max(next[tp] ?? 0, input.offset + 1)
            }
            if let first = section.entries.first, let last = section.entries.last {
                ranges.append(SequenceRange(partition: section.partition, firstSeq: first.seq, lastSeq: last.seq))
            }
            for entry in section.entries {
                minTime = min(minTime, entry.timestamp.nanos)
                maxTime = max(maxTime, entry.timestamp.nanos)
            }
        }
        let positions = next.map { InputPosition(topic: $0.key.topic, partition: $0.key.partition, nextOffset: $0.value) }
            .sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        let number = ledger.lastBatchNumber + 1
        let batch = LedgerBatch(
            number: number, previousHash: ledger.lastHash, kind: .entries, positions: positions, sequenceRanges: ranges,
            eventTime: minTime <= maxTime ? EventTimeRange(minNanos: minTime, maxNanos: maxTime) : nil,
            payload: BatchPayload(sections: sections).encode())
        let hash = try ledger.append(batch)
        stats.withLock {
            $0.records += events
            $0.batches += 1
        }

        // Durable: now its outputs may leave, then the offsets.
        try publish(outputs)
        try DataDirectoryFiles.writePublished(number, directory: config.dataDirectory, io: config.storageIO)
        if let report = config.batchPublished {
            progress.batch = number
            progress.records = events
            progress.entries = sections.reduce(0) { $0 + $1.entries.count }
            progress.deadLetters = outputs.reduce(0) { $0 + ($1.kind == .deadLetter ? 1 : 0) }
            report(progress)
        }
        do {
            try consumer.commit(next)
        } catch {
            logger.debug("offset commit failed (advisory; the ledger holds the offsets): \(error)")
        }
        batchesSinceSnapshot += 1
        if snapshotDue {
            batchesSinceSnapshot = 0
            do {
                let file = try snapshots.write(EngineSnapshots.encode(engines), coversThroughBatch: number, chainHash: hash)
                logger.debug("snapshot of \(engines.count) partition(s) through batch \(number): \(file)")
            } catch {
                // The ledger is durable without it; the next snapshot (or a longer replay) covers it.
                logger.warning("snapshot through batch \(number) failed: \(error)")
            }
        }
    }

    /// Sends `outputs` with the idempotent producer and waits until every one is confirmed
    /// delivered; records whose delivery failed are sent again.
    func publish(_ outputs: [OutputRecord]) throws {
        guard !outputs.isEmpty else { return }
        var pending = Array(outputs.indices)
        var round = 0
        while !pending.isEmpty {
            round += 1
            for i in pending {
                let output = outputs[i]
                let topic: String =
                    switch output.kind {
                    case .balanceChange: config.balanceTopic
                    case .alert: config.alertTopic
                    case .deadLetter: config.deadLetterTopic
                    }
                let record = KafkaProducerRecord(topic: topic, key: output.key, value: output.value, headers: output.headers)
                while true {
                    do {
                        try producer.send(record, token: UInt64(i))
                        break
                    } catch {
                        guard error.code == .queueFull || error.isRetriable else {
                            throw PipelineError("producing to \(topic): \(error)")
                        }
                        _ = producer.poll(timeoutMs: 10)  // the client's queue is full: let deliveries drain
                    }
                }
            }
            while true {
                do {
                    try producer.flush(timeoutMs: 10_000)
                    break
                } catch {
                    logger.warning("waiting for delivery of \(producer.outstandingCount) output record(s): \(error)")
                }
            }
            let reports = producer.takeReports()
            var failed: [Int] = []
            for report in reports where !report.succeeded { failed.append(Int(report.token)) }
            if !failed.isEmpty {
                logger.warning(
                    "\(failed.count) output record(s) not delivered (\(reports.first { !$0.succeeded }?.error.map { "\($0)" } ?? "?")); sending them again (round \(round))"
                )
                usleep(100_000)
            }
            pending = failed.sorted()
        }
        stats.withLock { $0.outputs += outputs.count }
    }
}
