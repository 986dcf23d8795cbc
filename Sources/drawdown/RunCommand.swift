// The pipeline: consume → shard → apply → commit → publish (see docs/pipeline.md).
import ArgumentParser
import Dispatch
import DrawdownCore
import DrawdownService
import Foundation
import Logging

/// `drawdown run`: the main job. Kafka in, sharded drawdown, durable ledger batches with
/// the input offsets they cover, balance changes, alerts and dead letters out.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume usage and credit commands from Kafka, commit the ledger in durable batches, publish balance changes.",
        discussion: """
            State lives under --data-dir (ledger, published marker, engine settings); on start the \
            ledger is recovered (a torn last batch is cut and logged; corruption refuses to start) \
            and replayed, outputs not confirmed delivered are sent again, and every assigned \
            partition resumes from the offsets in the ledger. Exit status 0 after a clean stop \
            (SIGTERM, SIGINT, or --stop-at-end); 1 on a storage error, ledger corruption, a replay \
            mismatch or a fatal Kafka error. See docs/pipeline.md.
            """)

    @Option(help: "Bootstrap servers, comma-separated host:port.") var brokers: String
    @Option(name: .customLong("topic"), help: "Input topic (repeatable; co-partitioned, keyed by customer).")
    var topics: [String] = []
    @Option(name: .customLong("data-dir"), help: "Directory for the ledger and its companions.") var dataDir: String
    @Option(help: "Price book (JSON). Without it, usage must carry `cost`.") var prices: String?
    @Option(help: "Consumer group.") var group = "drawdown"
    @Option(help: "Shards (serial queues); a partition p goes to shard p % N. Default: the number of cores.")
    var shards: Int?
    @Option(name: .customLong("batch-max"), help: "Close a ledger batch after this many records.") var batchMax = 5_000
    @Option(name: .customLong("batch-interval"), help: "…or after this long (e.g. 50ms).") var batchInterval = "50ms"
    @Option(name: .customLong("dedupe-window"), help: "How long ids are remembered, in event time.") var dedupeWindow = "24h"
    @Option(name: .customLong("expiry-grace"), help: "Grace after expires_at for the idle-customer sweep.") var expiryGrace = "1h"
    @Option(name: .customLong("snapshot-every"), help: "Write an engine snapshot every N batches (0: never).")
    var snapshotEvery = 1_000
    @Option(name: .customLong("balance-topic")) var balanceTopic = "balance-changes"
    @Option(name: .customLong("alert-topic")) var alertTopic = "alerts"
    @Option(name: .customLong("dead-letter-topic")) var deadLetterTopic = "drawdown.dead-letters"
    @Flag(name: .customLong("stop-at-end"), help: "Exit 0 once every assigned partition is at its end and the last batch is durable and published.")
    var stopAtEnd = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if topics.isEmpty { throw ValidationError("give at least one --topic") }
        if let shards, shards < 1 || shards > 1_024 { throw ValidationError("--shards must be 1…1024") }
        if batchMax < 1 { throw ValidationError("--batch-max must be at least 1") }
        if snapshotEvery < 0 { throw ValidationError("--snapshot-every must be 0 or more") }
    }

    func run() throws {
        guard let window = DurationParser.nanoseconds(dedupeWindow) else {
            throw ValidationError("--dedupe-window: not a duration: \(dedupeWindow) (e.g. 24h, 90m, 500ms)")
        }
        guard let grace = DurationParser.nanoseconds(expiryGrace) else {
            throw ValidationError("--expiry-grace: not a duration: \(expiryGrace) (e.g. 1h, 30m)")
        }
        guard let interval = DurationParser.nanoseconds(batchInterval), interval >= 1_000_000 else {
            throw ValidationError("--batch-interval: not a duration of at least 1ms: \(batchInterval)")
        }
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "drawdown.run")

        var priceBytes: [UInt8]?
        if let prices {
            guard let data = FileManager.default.contents(atPath: prices) else { throw CLIError("\(prices): cannot read the price book") }
            priceBytes = [UInt8](data)
        }
        let settings: EngineSettings
        do {
            settings = try EngineSettings(config: EngineConfig(dedupeWindow: window, expiryGrace: grace), priceBookJSON: priceBytes)
        } catch {
            throw CLIError("\(prices ?? "price book"): \(error)")
        }
        var config = PipelineConfig(
            brokers: brokers, topics: topics, dataDirectory: dataDir, settings: settings,
            shards: shards ?? ProcessInfo.processInfo.activeProcessorCount)
        config.groupID = group
        config.batchEventsMax = batchMax
        config.batchIntervalMs = Int(interval / 1_000_000)
        config.snapshotEveryBatches = snapshotEvery
        config.balanceTopic = balanceTopic
        config.alertTopic = alertTopic
        config.deadLetterTopic = deadLetterTopic
        config.stopAtEnd = stopAtEnd

        let pipeline = Pipeline(config: config, logger: logger)
        logger.info(
            "starting: brokers \(brokers), topics \(topics.joined(separator: ",")), data dir \(dataDir), \(config.shards) shard(s), batches of \(batchMax) records or \(config.batchIntervalMs) ms"
        )
        // SIGTERM / SIGINT: stop cleanly (last batch durable and published).
        let signalQueue = DispatchQueue(label: "drawdown.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            source.setEventHandler { pipeline.requestStop() }
            source.resume()
            sources.append(source)
        }
        defer { for source in sources { source.cancel() } }
        do {
            try pipeline.run()
        } catch {
            FileHandle.standardError.write(Data("drawdown run: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
