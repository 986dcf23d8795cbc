// The pipeline: consume → shard → apply → commit → publish (see docs/pipeline.md).
import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation
import Logging
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
    /// A shard with more records handed over and not yet committed than this has its
    /// partitions paused; they are resumed below half of it. Nil: 4 × `batchEventsMax`, so a
    /// batch stays within a few times `batchEventsMax` when the committer falls behind.
    public var shardPendingEventsMax: Int?
    public var pollRecordsMax = 10_000
    public var pollTimeoutMs: Int32 = 100
    public var consumerProperties: [String: String] = [:]
    public var producerProperties: [String: String] = [:]
    public var storageIO: any StorageIO = POSIXStorageIO()
    /// Called on the committer thread after each batch is durable and published.
    public var batchPublished: (@Sendable (BatchProgress) -> Void)?
    public var ledgerLimits = LedgerLimits.default

    public init(brokers: String, topics: [String], dataDirectory: String, settings: EngineSettings, shards: Int) {
        self.brokers = brokers
        self.topics = topics
        self.dataDirectory = dataDirectory
        self.settings = settings
        self.shards = max(1, shards)
    }
}

/// Why the pipeline stopped with an error.
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
        var summary = PipelineSummary()
        let io = config.storageIO

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
                engines: enginesByShard[$0], uncommitted: uncommitted)
        }
        let committer = Committer(
            config: config, logger: logger, ledger: ledger, producer: producer, consumer: consumer, shards: shards,
            uncommitted: uncommitted, snapshots: snapshots)

        // Outputs of durable batches that were never confirmed delivered: send them again.
        if rebuilt.lastBatch > published {
            try committer.publish(rebuilt.outputs)
            try DataDirectoryFiles.writePublished(rebuilt.lastBatch, directory: config.dataDirectory, io: io)
            summary.republished = rebuilt.outputs.count
            logger.info("re-sent \(rebuilt.outputs.count) output record(s) of batches \(published + 1)...\(rebuilt.lastBatch)")
        }

        // Seek: the ledger's next offsets (or what this run already handed over), else the beginning.
        let ledgerOffsets = ledger.nextOffsets
        let positions = PositionTable()
        let logger = self.logger
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

        let committerThread = Thread { committer.runLoop() }
        committerThread.name = "drawdown-committer"
        committerThread.start()

        var failure: String?
        do {
            try pollLoop(consumer: consumer, shards: shards, committer: committer, positions: positions)
        } catch {
            failure = "\(error)"
        }
        committer.finish()
        if failure == nil { failure = committer.failure }
        summary.recordsApplied = committer.stats.withLock { $0.records }
        summary.batchesWritten = committer.stats.withLock { $0.batches }
        summary.outputsPublished = committer.stats.withLock { $0.outputs }
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
        return summary
    }

    /// The poll thread: consume, route by partition to shards, track ends, apply back-pressure.
    private func pollLoop(consumer: KafkaConsumer, shards: [Shard], committer: Committer, positions: PositionTable) throws {
        let shardCount = shards.count
        var assigned = Set<KafkaTopicPartition>()
        var eof: [KafkaTopicPartition: Int64] = [:]
        var next: [KafkaTopicPartition: Int64] = [:]
        var pausedShards = Set<Int>()
        var indices = Array(repeating: [Int](), count: shardCount)
        var loggedEnd = false
        while true {
            if stopRequested.load(ordering: .relaxed) {
                logger.info("stop requested")
                return
            }
            if let failure = committer.failure { throw PipelineError(failure) }
            if let fatal = consumer.fatalError { throw PipelineError("consumer: \(fatal)") }

            // A poll never takes more than a ledger batch's worth, so batches stay near batchEventsMax.
            let batch = consumer.consumeBatch(
                maxRecords: min(config.pollRecordsMax, config.batchEventsMax), timeoutMs: config.pollTimeoutMs)
            if !batch.isEmpty {
                var moved: [KafkaTopicPartition: Int64] = [:]
                for i in batch.indices {
                    let tp = KafkaTopicPartition(topic: batch[i].topic, partition: batch.partition(at: i))
                    let offset = batch.offset(at: i)
                    // A record handed over before (librdkafka 2.0.x can deliver one twice): skip.
                    if let n = next[tp], offset < n { continue }
                    next[tp] = offset + 1
                    moved[tp] = offset + 1
                    indices[Int(tp.partition) % shardCount].append(i)
                }
                positions.update(moved)
                for s in 0..<shardCount where !indices[s].isEmpty {
                    let shard = shards[s]
                    let mine = indices[s]
                    shard.pendingEvents.add(mine.count, ordering: .relaxed)
                    shard.queue.async { shard.process(batch, mine) }
                    indices[s].removeAll(keepingCapacity: true)
                }
            }
            for event in batch.events {
                switch event {
                case .partitionEOF(let tp, let nextOffset):
                    eof[tp] = nextOffset
                case .assigned(let tps):
                    assigned.formUnion(tps)
                case .revoked(let tps, _):
                    assigned.subtract(tps)
                    for tp in tps { eof[tp] = nil }
                case .error(let error):
                    if error.isFatal { throw PipelineError("consumer: \(error)") }
                    logger.warning("consumer: \(error)")
                }
            }

            // Back-pressure: pause the partitions of a shard that is behind; resume when it drains.
            let pendingMax = config.shardPendingEventsMax ?? 4 * config.batchEventsMax
            for s in 0..<shardCount {
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
