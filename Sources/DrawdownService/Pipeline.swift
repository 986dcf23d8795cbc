// The pipeline: consume → shard → apply → commit → publish (see docs/pipeline.md).
import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation
import Logging
import Metrics
import Synchronization

/// Everything `drawdown run` can be told. Limits end in `Max`, times in their unit.
public struct PipelineConfig: Sendable {
    public var brokers: String
    public var topics: [String]
    public var dataDirectory: String
    public var groupID = "drawdown"
    public var settings: EngineSettings
    /// Serial queues the partitions are spread over (`partition % shards`).
    public var shards: Int
    /// A ledger batch is closed once this many records were applied since the last one…
    public var batchEventsMax = 5_000
    /// …or this long after the last one, whichever comes first.
    public var batchIntervalMs = 50
    /// Write an engine snapshot every this many batches (0: never).
    public var snapshotEveryBatches = 1_000
    public var balanceTopic = "balance-changes"
    public var alertTopic = "alerts"
    public var deadLetterTopic = "drawdown.dead-letters"
    /// Exit once every assigned partition is at its end and the last batch is durable and published.
    public var stopAtEnd = false
    /// A shard with more records handed over and not yet committed than this holds back
    /// consumption (see `backPressure`) until every shard is below half of it. Nil:
    /// `batchEventsMax`, so a batch stays within about `shards × batchEventsMax` when the
    /// committer falls behind (4 × made batches of ~37k records at `--batch-max 5000`, with
    /// 4× the latency and memory and no more throughput: docs/benchmarks.md).
    public var shardPendingEventsMax: Int?
    /// How consumption is held back when a shard is behind.
    public var backPressure = BackPressure.holdPolls
    public var pollRecordsMax = 10_000
    public var pollTimeoutMs: Int32 = 100
    public var consumerProperties: [String: String] = [:]
    public var producerProperties: [String: String] = [:]
    public var storageIO: any StorageIO = POSIXStorageIO()
    /// Called on the publisher thread after each batch is durable and published.
    public var batchPublished: (@Sendable (BatchProgress) -> Void)?
    public var ledgerLimits = LedgerLimits.default
    /// When set, the pipeline keeps it current: phase, assigned partitions, and every
    /// customer's balances as of the last durable batch (nil: none of that work is done).
    public var status: ProcessorStatus?
    /// Durable batches whose outputs may be in delivery at once while the committer closes
    /// the next one; beyond that the committer waits (and consumption with it). Also bounds
    /// what a crash leaves to re-send on restart: the outputs of these batches.
    public var publishBatchesInFlightMax = 2
    /// Offsets of published batches are committed to Kafka at most this often (each commit
    /// is a synchronous round trip; they are advisory), and once more at the end.
    public var offsetCommitIntervalMs = 1_000
    /// Where the metrics (`MetricNames`) go; nil: the process's bootstrapped
    /// `MetricsSystem.factory` (no-ops unless something bootstrapped it).
    public var metricsFactory: (any MetricsFactory)?

    public init(brokers: String, topics: [String], dataDirectory: String, settings: EngineSettings, shards: Int) {
        self.brokers = brokers
        self.topics = topics
        self.dataDirectory = dataDirectory
        self.settings = settings
        self.shards = max(1, shards)
    }
}

/// How the poll thread holds back consumption while a shard is behind.
public enum BackPressure: Sendable {
    /// Stop polling until every shard is below half its limit. librdkafka keeps what it has
    /// prefetched (bounded by `queued.max.messages.kbytes`) and stops fetching; polling
    /// resumes with no refetch. The default: pausing made every resume wait for a new fetch
    /// round trip, which stalled the pipeline whenever the committer was behind.
    case holdPolls
    /// Pause the partitions feeding the shard that is behind; resume them below half the
    /// limit (librdkafka drops its prefetched records and fetches them again).
    case pausePartitions
}

/// What one published batch did, with the engines' running totals (for progress displays).
public struct BatchProgress: Sendable {
    public var batch: UInt64 = 0
    /// Input records in this batch.
    public var records = 0
    public var entries = 0
    public var deadLetters = 0
    /// Running totals over every partition of this processor, since its state began.
    public var applied: UInt64 = 0
    public var duplicates: UInt64 = 0
    public var rejected: UInt64 = 0

    public init() {}
}

public struct PipelineError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a run did, for the shutdown line and tests.
public struct PipelineSummary: Sendable {
    public var recordsApplied = 0
    public var batchesWritten = 0
    public var outputsPublished = 0
    public var recoveredBatches = 0
    public var republished = 0
    public var seconds = 0.0
    /// Seconds from start until recovery was done (ledger opened, state rebuilt, unpublished
    /// outputs re-sent).
    public var recoverySeconds = 0.0
    /// Ledger fdatasyncs plus `published` marker fsyncs.
    public var fsyncs = 0
    /// Bytes appended to the ledger's segment files.
    public var ledgerBytes: Int64 = 0
    /// Output records whose delivery failed and were sent again.
    public var produceErrors = 0
    /// Per record: from hand-off to a shard until its batch was durable.
    public var consumeToDurable = LatencyFigures()
    /// Per record: from hand-off to a shard until every output of its batch was delivered.
    public var consumeToDelivered = LatencyFigures()
}

/// The main job (`drawdown run`): one poll thread owns the consumer and hands each consumed
/// batch to the shards (one hand-off per batch per shard); a committer thread closes ledger
/// batches, makes them durable, then publishes their outputs and records that, then commits
/// offsets to Kafka (advisory: the ledger is the truth).
public final class Pipeline: Sendable {
    public let config: PipelineConfig
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

    public init(config: PipelineConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Asks a running pipeline to stop cleanly (signal handlers call this): the poll loop
    /// ends, the committer makes a last batch of what was handed over, publishes it, exits.
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Recovers from the data directory, then runs until `stopAtEnd` is satisfied or
    /// `requestStop()`. Blocks the calling thread (it becomes the poll thread). Throws on
    /// corruption, a replay mismatch, a storage error or a fatal Kafka error; nothing is
    /// published or committed for a batch that did not become durable.
    @discardableResult
    public func run() throws -> PipelineSummary {
        let started = DispatchTime.now().uptimeNanoseconds
        let status = config.status
        status?.setPhase(.recovering)
        do {
            let summary = try runRecovered(started: started)
            status?.setPhase(.stopped)
            return summary
        } catch {
            status?.setPhase(.failed)
            throw error
        }
    }

    private func runRecovered(started: UInt64) throws -> PipelineSummary {
        var summary = PipelineSummary()
        let io = config.storageIO
        let status = config.status
        let metrics = PipelineMetrics(shards: config.shards, factory: config.metricsFactory)

        // Recovery: the ledger (torn tail cut, corruption refused), then replay.
        let ledger = try LedgerStore.open(dataDirectory: config.dataDirectory, limits: config.ledgerLimits, io: io)
        let report = ledger.recoveryReport
        if let torn = report.tornTail {
            logger.warning("ledger: cut a torn last record (a crash mid-write), \(report.bytesCut) bytes: \(torn)")
        }
        let published = try DataDirectoryFiles.readPublished(directory: config.dataDirectory)
        let snapshots = try SnapshotStore(dataDirectory: config.dataDirectory, limits: config.ledgerLimits, io: io)
        let rebuilt = try LedgerReplay.rebuild(
            ledger: ledger, snapshots: snapshots, settings: config.settings, outputsAfterBatch: published)
        for skipped in rebuilt.skippedSnapshots { logger.warning("snapshot skipped: \(skipped)") }
        summary.recoveredBatches = rebuilt.batchesReplayed
        logger.info(
            "recovered: \(report.segmentCount) segment(s), snapshot \(rebuilt.snapshotBatch.map { "through batch \($0)" } ?? "none"), \(rebuilt.batchesReplayed) batch(es), \(rebuilt.recordsReplayed) record(s) replayed, \(rebuilt.engines.count) partition(s), last batch \(rebuilt.lastBatch), published through \(published)"
        )
        // The replay matched under these settings: they are the ledger's from now on.
        try config.settings.save(dataDirectory: config.dataDirectory, io: io)
        if let status, status.tracksCustomers {
            var customers: [ProcessorStatus.DurableCustomer] = []
            for engine in rebuilt.engines {
                for view in engine.allCustomerViews() {
                    customers.append(ProcessorStatus.DurableCustomer(view: view, batch: rebuilt.lastBatch, partitionSeq: engine.lastSeq))
                }
            }
            status.load(customers, throughBatch: rebuilt.lastBatch)
        }

        var producerConfig = KafkaProducerConfig(bootstrapServers: config.brokers)
        producerConfig.clientID = "drawdown-run"
        producerConfig.additionalProperties = config.producerProperties
        let producer = try KafkaProducer(config: producerConfig)

        var consumerConfig = KafkaConsumerConfig(bootstrapServers: config.brokers, groupID: config.groupID)
        consumerConfig.clientID = "drawdown-run"
        consumerConfig.autoOffsetReset = .earliest
        consumerConfig.enablePartitionEOF = true
        consumerConfig.additionalProperties = config.consumerProperties
        let consumer = try KafkaConsumer(config: consumerConfig)

        let uncommitted = SharedCounter()
        let shardCount = config.shards
        var enginesByShard = Array(repeating: [PartitionEngine](), count: shardCount)
        for engine in rebuilt.engines { enginesByShard[Int(engine.partition) % shardCount].append(engine) }
        let shards = (0..<shardCount).map {
            Shard(
                index: $0, priceBook: config.settings.priceBook, config: config.settings.config,
                engines: enginesByShard[$0], uncommitted: uncommitted, tracksCustomers: status?.tracksCustomers ?? false)
        }
        let stats = SharedRunStats()
        let publisher = Publisher(
            config: config, logger: logger, producer: producer, consumer: consumer, snapshots: snapshots, metrics: metrics,
            stats: stats, publishedThrough: published)
        let committer = Committer(
            config: config, logger: logger, ledger: ledger, shards: shards, uncommitted: uncommitted, publisher: publisher,
            metrics: metrics, stats: stats, recovered: rebuilt.engines)
        publisher.start()

        // Outputs of durable batches that were never confirmed delivered: send them again.
        if rebuilt.lastBatch > published {
            publisher.enqueue(Publisher.Job(number: rebuilt.lastBatch, outputs: OutputBuffer(rebuilt.outputs)))
            do {
                try publisher.waitPublished(through: rebuilt.lastBatch)
            } catch {
                publisher.finish()
                throw error
            }
            summary.republished = rebuilt.outputs.count
            logger.info("re-sent \(rebuilt.outputs.count) output record(s) of batches \(published + 1)...\(rebuilt.lastBatch)")
        }
        summary.recoverySeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        metrics.recoverySeconds.record(summary.recoverySeconds)
        status?.setPhase(.waitingForAssignment)

        // Seek: the ledger's next offsets (or what this run already handed over), else the beginning.
        let ledgerOffsets = ledger.nextOffsets
        let positions = PositionTable()
        let logger = self.logger
        do {
            try consumer.subscribe(
                config.topics,
                listener: KafkaRebalanceListener(
                    partitionsAssigned: { tps in
                        let known = positions.snapshot()
                        var start: [KafkaTopicPartition: KafkaOffset] = [:]
                        for tp in tps {
                            if let next = known[tp] ?? ledgerOffsets[InputPartition(topic: tp.topic, partition: tp.partition)] {
                                start[tp] = .exact(next)
                            } else {
                                start[tp] = .beginning
                            }
                        }
                        logger.info("assigned \(tps.count) partition(s): \(start.sorted { $0.key.description < $1.key.description }.map { "\($0.key)@\($0.value)" }.joined(separator: " "))")
                        return start
                    },
                    partitionsRevoked: { tps, lost in
                        logger.info("revoked \(tps.count) partition(s)\(lost ? " (lost)" : ""): \(tps.map(\.description).sorted().joined(separator: " "))")
                    }))
        } catch {
            publisher.finish()  // nothing is in flight yet: it stops at once
            throw error
        }

        let committerThread = Thread { committer.runLoop() }
        committerThread.name = "drawdown-committer"
        committerThread.start()

        var failure: String?
        do {
            try pollLoop(consumer: consumer, shards: shards, committer: committer, positions: positions, metrics: metrics)
        } catch {
            failure = "\(error)"
        }
        committer.finish()
        if failure == nil { failure = committer.failure }
        let final = stats.value.withLock { $0 }
        summary.recordsApplied = final.records
        summary.batchesWritten = final.batches
        summary.outputsPublished = final.outputs
        summary.fsyncs = final.fsyncs
        summary.ledgerBytes = final.ledgerBytes
        summary.produceErrors = final.produceErrors
        summary.consumeToDurable = final.durable
        summary.consumeToDelivered = final.delivered
        do {
            try consumer.close()
        } catch {
            logger.warning("consumer close: \(error)")
        }
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        if let failure {
            logger.error("stopped on error after \(summary.batchesWritten) batch(es): \(failure)")
            throw PipelineError(failure)
        }
        logger.info(
            "stopped: \(summary.recordsApplied) record(s) in \(summary.batchesWritten) batch(es), \(summary.outputsPublished) output(s) published, \(String(format: "%.2f", summary.seconds)) s"
        )
        logger.info(
            "timings: recovery \(String(format: "%.3f", summary.recoverySeconds)) s, \(summary.fsyncs) fsync(s), \(summary.ledgerBytes) ledger byte(s), \(summary.produceErrors) produce error(s); consume to durable \(summary.consumeToDurable); consume to delivered \(summary.consumeToDelivered)"
        )
        return summary
    }

    /// The poll thread: consume, route by partition to shards, track ends, apply back-pressure.
    private func pollLoop(
        consumer: KafkaConsumer, shards: [Shard], committer: Committer, positions: PositionTable, metrics: PipelineMetrics
    ) throws {
        let status = config.status
        var lags = LagGauges(factory: metrics.factory)
        var lastLagUpdate: UInt64 = 0
        let shardCount = shards.count
        var assigned = Set<KafkaTopicPartition>()
        var eof: [KafkaTopicPartition: Int64] = [:]
        var next: [KafkaTopicPartition: Int64] = [:]
        var pausedShards = Set<Int>()
        var indices = Array(repeating: [Int](), count: shardCount)
        var loggedEnd = false
        let pendingMax = config.shardPendingEventsMax ?? config.batchEventsMax
        var holding = false
        while true {
            if stopRequested.load(ordering: .relaxed) {
                logger.info("stop requested: finishing the batch in hand")
                status?.setPhase(.stopping)
                return
            }
            if let failure = committer.failure { throw PipelineError(failure) }
            if let fatal = consumer.fatalError { throw PipelineError("consumer: \(fatal)") }
            if config.backPressure == .holdPolls {
                let pending = shards.map { $0.pendingEvents.load(ordering: .relaxed) }
                if holding, pending.allSatisfy({ $0 <= pendingMax / 2 }) {
                    holding = false
                } else if !holding, pending.contains(where: { $0 > pendingMax }) {
                    holding = true
                }
                if holding {
                    usleep(500)
                    continue
                }
            }

            // A poll never takes more than a ledger batch's worth, so batches stay near batchEventsMax.
            let batch = consumer.consumeBatch(
                maxRecords: min(config.pollRecordsMax, config.batchEventsMax), timeoutMs: config.pollTimeoutMs)
            if !batch.isEmpty {
                let handedAt = DispatchTime.now().uptimeNanoseconds
                var moved: [KafkaTopicPartition: Int64] = [:]
                // Records come in runs of one topic-partition: its next offset is looked up
                // once per run, not once per record.
                var run: (topic: Int, partition: Int32, tp: KafkaTopicPartition, next: Int64?, moved: Bool)?
                func endRun() {
                    guard let r = run, r.moved, let n = r.next else { return }
                    next[r.tp] = n
                    moved[r.tp] = n
                }
                for i in batch.indices {
                    let topicIndex = batch.topicIndex(at: i)
                    let partition = batch.partition(at: i)
                    if run == nil || run!.topic != topicIndex || run!.partition != partition {
                        endRun()
                        let tp = KafkaTopicPartition(topic: batch.topics[topicIndex], partition: partition)
                        run = (topicIndex, partition, tp, next[tp], false)
                    }
                    let offset = batch.offset(at: i)
                    // A record handed over before (librdkafka 2.0.x can deliver one twice): skip.
                    if let n = run!.next, offset < n { continue }
                    run!.next = offset + 1
                    run!.moved = true
                    indices[Int(partition) % shardCount].append(i)
                }
                endRun()
                positions.update(moved)
                var handed = 0
                for s in 0..<shardCount where !indices[s].isEmpty {
                    let shard = shards[s]
                    let mine = indices[s]
                    handed += mine.count
                    shard.pendingEvents.add(mine.count, ordering: .relaxed)
                    shard.queue.async { shard.process(batch, mine, handedAt: handedAt) }
                    indices[s].removeAll(keepingCapacity: true)
                }
                if handed > 0 { metrics.recordsConsumed.increment(by: handed) }
            }
            for event in batch.events {
                switch event {
                case .partitionEOF(let tp, let nextOffset):
                    eof[tp] = nextOffset
                case .assigned(let tps):
                    assigned.formUnion(tps)
                    status?.setAssignedPartitions(assigned.count)
                    status?.setPhase(assigned.isEmpty ? .waitingForAssignment : .consuming)
                case .revoked(let tps, _):
                    assigned.subtract(tps)
                    for tp in tps { eof[tp] = nil }
                    status?.setAssignedPartitions(assigned.count)
                    status?.setPhase(assigned.isEmpty ? .waitingForAssignment : .consuming)
                case .error(let error):
                    if error.isFatal { throw PipelineError("consumer: \(error)") }
                    logger.warning("consumer: \(error)")
                }
            }

            // Lag per partition from the watermarks the consumer last fetched, once a second.
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastLagUpdate >= 1_000_000_000 {
                lastLagUpdate = now
                lags.update(consumer: consumer, assigned: assigned, next: next)
            }

            // Back-pressure by pausing: the partitions of a shard that is behind; resumed when it drains.
            for s in 0..<shardCount where config.backPressure == .pausePartitions {
                let pending = shards[s].pendingEvents.load(ordering: .relaxed)
                let feeding = assigned.filter { Int($0.partition) % shardCount == s }
                if !pausedShards.contains(s), pending > pendingMax {
                    try consumer.pause(Array(feeding))
                    pausedShards.insert(s)
                    logger.debug("shard \(s) behind (\(pending) pending): paused \(feeding.count) partition(s)")
                } else if pausedShards.contains(s), pending <= pendingMax / 2 {
                    try consumer.resume(Array(feeding))
                    pausedShards.remove(s)
                    logger.debug("shard \(s) drained (\(pending) pending): resumed \(feeding.count) partition(s)")
                }
            }

            if config.stopAtEnd, !assigned.isEmpty, pausedShards.isEmpty {
                let atEnd = assigned.allSatisfy { tp in
                    guard let end = eof[tp] else { return false }
                    return (next[tp] ?? end) >= end
                }
                if atEnd {
                    if !loggedEnd {
                        logger.info("every assigned partition (\(assigned.count)) is at its end: finishing")
                        loggedEnd = true
                    }
                    return
                }
            }
        }
    }
}

/// Next offsets handed over to shards, per input partition; read by the rebalance callback.
final class PositionTable: Sendable {
    private let table = Mutex<[KafkaTopicPartition: Int64]>([:])
    func update(_ moved: [KafkaTopicPartition: Int64]) {
        guard !moved.isEmpty else { return }
        table.withLock { t in for (tp, n) in moved { t[tp] = n } }
    }
    func snapshot() -> [KafkaTopicPartition: Int64] { table.withLock { $0 } }
}
