// The pipeline: consume → shard → apply → commit → publish (see docs/pipeline.md), operated
// (HTTP API, metrics, lifecycle, configuration: docs/operations.md).
import ArgumentParser
import DrawdownCore
import DrawdownHTTP
import DrawdownKafka
import DrawdownService
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `drawdown run`: the main job. Kafka in, sharded drawdown, durable ledger batches with
/// the input offsets they cover, balance changes, alerts and dead letters out; optionally
/// the HTTP API.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume usage and credit commands from Kafka, commit the ledger in durable batches, publish balance changes.",
        discussion: """
            Every option can also be set with an environment variable DRAWDOWN_<NAME> (e.g. \
            DRAWDOWN_BROKERS, DRAWDOWN_DATA_DIR; repeatable ones comma-separated, kafka-option \
            separated by `;` or newlines) or in the --config file as `name = value` lines; a flag \
            wins over the environment, which wins over the file, which wins over the default.

            State lives under --data-dir (ledger, published marker, engine settings); on start the \
            ledger is recovered (a torn last batch is cut and logged; corruption refuses to start) \
            and replayed, outputs not confirmed delivered are sent again, and every assigned \
            partition resumes from the offsets in the ledger.

            With --http, serves GET /v1/customers/{id}/balances, GET /v1/customers/{id}/ledger, \
            POST /v1/commands, GET /healthz, /readyz and /metrics. When DRAWDOWN_API_TOKEN is set, \
            every /v1/ route needs `Authorization: Bearer <token>`; never expose the API without it.

            Exit status 0 after a clean stop (SIGTERM or SIGINT: the batch in hand is made durable \
            and published; or --stop-at-end); a second signal exits at once with 128+signal; 1 on \
            a storage error, ledger corruption, a replay mismatch, a fatal Kafka error or a stop \
            slower than --shutdown-timeout; 2 on invalid configuration, before anything is read \
            or written. See docs/pipeline.md and docs/operations.md.
            """)

    @Option(help: "Bootstrap servers, comma-separated host:port. Required. [env DRAWDOWN_BROKERS]")
    var brokers: String?
    @Option(name: .customLong("topic"), help: "Input topic (repeatable; co-partitioned, keyed by customer). At least one. [env DRAWDOWN_TOPIC]")
    var topics: [String] = []
    @Option(name: .customLong("data-dir"), help: "Directory for the ledger and its companions. Required. [env DRAWDOWN_DATA_DIR]")
    var dataDir: String?
    @Option(help: "Price book (JSON). Default: none (usage must carry `cost`). [env DRAWDOWN_PRICES]")
    var prices: String?
    @Option(help: "Consumer group. Default: drawdown. [env DRAWDOWN_GROUP]")
    var group: String?
    @Option(help: "Shards (serial queues), 1…1024; a partition p goes to shard p % N. Default: the number of cores. [env DRAWDOWN_SHARDS]")
    var shards: String?
    @Option(name: .customLong("batch-max"), help: "Close a ledger batch after this many records. Default: 5000. [env DRAWDOWN_BATCH_MAX]")
    var batchMax: String?
    @Option(name: .customLong("batch-interval"), help: "…or after this long, at least 1ms. Default: 50ms. [env DRAWDOWN_BATCH_INTERVAL]")
    var batchInterval: String?
    @Option(name: .customLong("dedupe-window"), help: "How long ids are remembered, in event time. Default: 24h. [env DRAWDOWN_DEDUPE_WINDOW]")
    var dedupeWindow: String?
    @Option(name: .customLong("expiry-grace"), help: "Grace after expires_at for the idle-customer sweep. Default: 1h. [env DRAWDOWN_EXPIRY_GRACE]")
    var expiryGrace: String?
    @Option(name: .customLong("snapshot-every"), help: "Write an engine snapshot every N batches (0: never). Default: 1000. [env DRAWDOWN_SNAPSHOT_EVERY]")
    var snapshotEvery: String?
    @Option(name: .customLong("balance-topic"), help: "Default: balance-changes. [env DRAWDOWN_BALANCE_TOPIC]")
    var balanceTopic: String?
    @Option(name: .customLong("alert-topic"), help: "Default: alerts. [env DRAWDOWN_ALERT_TOPIC]")
    var alertTopic: String?
    @Option(name: .customLong("dead-letter-topic"), help: "Default: drawdown.dead-letters. [env DRAWDOWN_DEAD_LETTER_TOPIC]")
    var deadLetterTopic: String?
    @Option(
        name: .customLong("command-topic"),
        help: "Credit commands: consumed like --topic, and where POST /v1/commands produces; empty: none. Default: credit-commands. [env DRAWDOWN_COMMAND_TOPIC]")
    var commandTopic: String?
    @Flag(name: .customLong("stop-at-end"), help: "Exit 0 once every assigned partition is at its end and the last batch is durable and published. Default: off. [env DRAWDOWN_STOP_AT_END=true]")
    var stopAtEnd = false
    @Option(name: .customLong("http"), help: "Serve the HTTP API and /metrics on HOST:PORT (:PORT for every address). Default: off. [env DRAWDOWN_HTTP]")
    var http: String?
    @Option(
        name: .customLong("kafka-option"),
        help: "A librdkafka property KEY=VALUE for every client (TLS, SASL…), repeatable. [env DRAWDOWN_KAFKA_OPTION, `;`-separated]")
    var kafkaOptions: [String] = []
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical. Default: info. [env DRAWDOWN_LOG_LEVEL]")
    var logLevel: String?
    @Option(name: .customLong("log-format"), help: "text or json (one object per line), on standard error. Default: text. [env DRAWDOWN_LOG_FORMAT]")
    var logFormat: String?
    @Option(name: .customLong("shutdown-timeout"), help: "After SIGTERM/SIGINT, exit 1 if the clean stop takes longer. Default: 30s. [env DRAWDOWN_SHUTDOWN_TIMEOUT]")
    var shutdownTimeout: String?
    @Option(help: "Read options from FILE (`name = value` lines; see docs/operations.md). [env DRAWDOWN_CONFIG]")
    var config: String?
    @Flag(
        name: .customLong("check-config"),
        help: "Check the configuration (options, price book, data-dir permissions, librdkafka properties), print each option with its value and where it came from, and exit 0, or 2 naming the problem. Connects to nothing, writes nothing.")
    var checkConfig = false

    /// Values given as flags, by option name.
    private var flagValues: [String: [String]] {
        var v: [String: [String]] = [:]
        func put(_ name: String, _ value: String?) { if let value { v[name] = [value] } }
        put("brokers", brokers)
        if !topics.isEmpty { v["topic"] = topics }
        put("data-dir", dataDir)
        put("prices", prices)
        put("group", group)
        put("shards", shards)
        put("batch-max", batchMax)
        put("batch-interval", batchInterval)
        put("dedupe-window", dedupeWindow)
        put("expiry-grace", expiryGrace)
        put("snapshot-every", snapshotEvery)
        put("balance-topic", balanceTopic)
        put("alert-topic", alertTopic)
        put("dead-letter-topic", deadLetterTopic)
        put("command-topic", commandTopic)
        if stopAtEnd { v["stop-at-end"] = ["true"] }
        put("http", http)
        if !kafkaOptions.isEmpty { v["kafka-option"] = kafkaOptions }
        put("log-level", logLevel)
        put("log-format", logFormat)
        put("shutdown-timeout", shutdownTimeout)
        return v
    }

    /// glibc malloc serves the pipeline's per-batch buffers (payloads, output and entry
    /// arrays: hundreds of KiB to a few MiB, allocated and freed every batch) with fresh
    /// mmaps, or trims them off the heap top when freed, so every batch paid page faults and
    /// zeroing for them again (`clear_page` was ~6 % of the run's CPU). Keep them in the heap
    /// and keep freed memory for reuse. Peak memory is bounded by back-pressure anyway.
    static func tuneAllocator() {
        #if canImport(Glibc)
        // <malloc.h> is not in the Glibc module: look mallopt up (absent with another libc).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let mmapThreshold: Int32 = -3, trimThreshold: Int32 = -1  // M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
        _ = mallopt(mmapThreshold, 64 << 20)
        _ = mallopt(trimThreshold, 256 << 20)
        #endif
    }

    func run() async throws {
        let resolved: ResolvedRun
        do {
            resolved = try resolve(environment: ProcessInfo.processInfo.environment)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("drawdown run: invalid configuration: \(error)\n".utf8))
            throw ExitCode(ProcessorRunner.exitConfiguration)
        }
        if checkConfig {
            print(resolved.layered.effective(), terminator: "")
            return
        }
        resolved.logFormat.bootstrap(level: resolved.logLevel)
        Self.tuneAllocator()
        let logger = Logger(label: "drawdown.run")
        var options = resolved.runner
        do {
            try checkPartitions(&options, inputTopics: resolved.inputTopics, logger: logger)
        } catch let error as ConfigurationError {
            logger.critical("invalid configuration: \(error)")
            throw ExitCode(ProcessorRunner.exitConfiguration)
        }
        let p = options.pipeline
        logger.info(
            "starting: brokers \(p.brokers), topics \(p.topics.joined(separator: ",")), data dir \(p.dataDirectory), \(p.shards) shard(s), batches of \(p.batchEventsMax) records or \(p.batchIntervalMs) ms, http \(options.http.map { "\($0.host):\($0.port)" } ?? "off"), api token \(options.apiToken == nil ? "NOT SET" : "set")"
        )
        if options.http != nil, options.apiToken == nil {
            logger.warning("DRAWDOWN_API_TOKEN is not set: /v1/ routes need no authorization; do not expose this address")
        }
        let status = await ProcessorRunner.run(options, logger: logger)
        if status != 0 { throw ExitCode(status) }
    }

    struct ResolvedRun {
        var layered: LayeredOptions
        var runner: RunnerOptions
        var inputTopics: [String]
        var logLevel: Logger.Level
        var logFormat: LogFormat
    }

    /// Every option after precedence, checked; throws `ConfigurationError` naming the option.
    /// Reads only the config file and the price book, and checks the data directory's
    /// permissions: nothing is written.
    func resolve(environment: [String: String]) throws -> ResolvedRun {
        var configFile: (path: String, text: String)?
        let configPath = config ?? environment["DRAWDOWN_CONFIG"]
        if let path = configPath {
            let source = config != nil ? "--config" : "DRAWDOWN_CONFIG"
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError("\(source) \(path): cannot read the file")
            }
            configFile = (path, String(decoding: data, as: UTF8.self))
        }
        let o = try LayeredOptions(flags: flagValues, environment: environment, configFile: configFile)

        let brokers = try o.required("brokers")
        var inputTopics: [String] = []
        for topic in o.list("topic")?.values ?? [] where !inputTopics.contains(topic) { inputTopics.append(topic) }
        guard !inputTopics.isEmpty else { throw ConfigurationError("give at least one --topic (or DRAWDOWN_TOPIC, or `topic =` in --config)") }
        let dataDir = try o.required("data-dir")

        guard let level = Logger.Level(rawValue: o.string("log-level")?.value ?? "info") else {
            throw ConfigurationError("\(o.string("log-level")!.source): unknown level `\(o.string("log-level")!.value)` (trace, debug, info, notice, warning, error, critical)")
        }
        guard let format = LogFormat(rawValue: o.string("log-format")?.value ?? "text") else {
            throw ConfigurationError("\(o.string("log-format")!.source): unknown format `\(o.string("log-format")!.value)` (text or json)")
        }
        let shards = try o.integer("shards", default: ProcessInfo.processInfo.activeProcessorCount, range: 1...1_024)
        let batchMax = try o.integer("batch-max", default: 5_000, range: 1...10_000_000)
        let snapshotEvery = try o.integer("snapshot-every", default: 1_000, range: 0...Int(Int32.max))
        let interval = try o.duration("batch-interval", default: "50ms", minimumNanos: 1_000_000)
        let window = try o.duration("dedupe-window", default: "24h")
        let grace = try o.duration("expiry-grace", default: "1h")
        let shutdown = try o.duration("shutdown-timeout", default: "30s", minimumNanos: 1_000_000)
        let stopAtEnd = try o.flag("stop-at-end")
        let http = try o.string("http").map { try parseListenAddress($0.value, source: $0.source) }

        var kafka: [String: String] = [:]
        if let given = o.list("kafka-option") {
            for item in given.values {
                guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                    throw ConfigurationError("\(given.source): `\(item)` is not KEY=VALUE")
                }
                let key = String(item[..<eq]).trimmingCharacters(in: .whitespaces)
                if managedKafkaProperties.contains(key) {
                    throw ConfigurationError("\(given.source): `\(key)` is set by drawdown itself and cannot be overridden")
                }
                kafka[key] = String(item[item.index(after: eq)...])
            }
            do {
                try KafkaMetadata.validate(kafka)
            } catch {
                throw ConfigurationError("\(given.source): librdkafka refuses it: \(error)")
            }
        }

        var priceBytes: [UInt8]?
        if let prices = o.string("prices") {
            guard let data = FileManager.default.contents(atPath: prices.value) else {
                throw ConfigurationError("\(prices.source) \(prices.value): cannot read the price book")
            }
            priceBytes = [UInt8](data)
        }
        let settings: EngineSettings
        do {
            settings = try EngineSettings(config: EngineConfig(dedupeWindow: window, expiryGrace: grace), priceBookJSON: priceBytes)
        } catch {
            throw ConfigurationError("\(o.string("prices")?.source ?? "--prices") \(o.string("prices")?.value ?? ""): not a valid price book: \(error)")
        }
        try checkDataDirectory(dataDir)

        let commandTopic = o.string("command-topic")?.value ?? "credit-commands"
        var pipeline = PipelineConfig(brokers: brokers, topics: inputTopics, dataDirectory: dataDir, settings: settings, shards: shards)
        pipeline.groupID = o.string("group")?.value ?? "drawdown"
        pipeline.batchEventsMax = batchMax
        pipeline.batchIntervalMs = Int(interval / 1_000_000)
        pipeline.snapshotEveryBatches = snapshotEvery
        pipeline.balanceTopic = o.string("balance-topic")?.value ?? "balance-changes"
        pipeline.alertTopic = o.string("alert-topic")?.value ?? "alerts"
        pipeline.deadLetterTopic = o.string("dead-letter-topic")?.value ?? "drawdown.dead-letters"
        pipeline.stopAtEnd = stopAtEnd
        pipeline.consumerProperties = kafka
        pipeline.producerProperties = kafka

        var runner = RunnerOptions(pipeline: pipeline, ledgerIO: ReadOnlyStorageIO())
        runner.http = http
        runner.commandTopic = commandTopic.isEmpty ? nil : commandTopic
        runner.kafkaProperties = kafka
        runner.apiToken = environment["DRAWDOWN_API_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        runner.shutdownTimeoutSeconds = Double(shutdown) / 1e9
        return ResolvedRun(layered: o, runner: runner, inputTopics: inputTopics, logLevel: level, logFormat: format)
    }

    /// Co-partitioning (SPEC §5): every input topic and the command topic must have the same
    /// partition count. A command topic the cluster does not have is not consumed (and the API
    /// refuses commands). Without metadata (brokers unreachable), nothing is checked and the
    /// command topic is consumed as given.
    func checkPartitions(_ options: inout RunnerOptions, inputTopics: [String], logger: Logger) throws {
        let counts: [String: Int32]
        do {
            counts = try KafkaMetadata.partitionCounts(
                bootstrapServers: options.pipeline.brokers, properties: options.kafkaProperties, timeoutMs: 10_000)
        } catch {
            logger.warning("cluster metadata unavailable (\(error)): co-partitioning of the topics not checked")
            if let command = options.commandTopic, !options.pipeline.topics.contains(command) { options.pipeline.topics.append(command) }
            return
        }
        let known = inputTopics.compactMap { t in counts[t].map { (t, $0) } }
        if Set(known.map(\.1)).count > 1 {
            throw ConfigurationError(
                "--topic: input topics are not co-partitioned (SPEC §5): " + known.map { "\($0.0) has \($0.1) partitions" }.joined(separator: ", "))
        }
        for topic in inputTopics where counts[topic] == nil {
            logger.warning("input topic \(topic) does not exist (yet): it is consumed once it does")
        }
        guard let command = options.commandTopic, !inputTopics.contains(command) else { return }
        guard let commandCount = counts[command] else {
            logger.warning("command topic \(command) does not exist: not consumed, and POST /v1/commands answers 503")
            options.commandTopic = nil
            return
        }
        if let inputCount = known.first?.1, inputCount != commandCount {
            throw ConfigurationError(
                "--command-topic: \(command) has \(commandCount) partitions but the input topics have \(inputCount); they must be co-partitioned (SPEC §5)")
        }
        options.pipeline.topics.append(command)
    }
}
