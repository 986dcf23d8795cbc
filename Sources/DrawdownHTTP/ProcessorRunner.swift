import Dispatch
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// Everything `drawdown run` hands to the runner once its configuration is valid.
public struct RunnerOptions: Sendable {
    public var pipeline: PipelineConfig
    /// `--http HOST:PORT`; nil: no HTTP server, no metrics.
    public var http: (host: String, port: Int)?
    /// Where `POST /v1/commands` produces (`--command-topic`); nil: refused with 503.
    public var commandTopic: String?
    /// Extra librdkafka properties for the intake producer (`--kafka-option`).
    public var kafkaProperties: [String: String] = [:]
    /// `DRAWDOWN_API_TOKEN`.
    public var apiToken: String?
    /// After the first SIGTERM/SIGINT, exit 1 if the clean stop takes longer than this.
    public var shutdownTimeoutSeconds: Double = 30
    /// Where the API reads the ledger from (read-only, no lock).
    public var ledgerIO: any StorageIO

    public init(pipeline: PipelineConfig, ledgerIO: any StorageIO) {
        self.pipeline = pipeline
        self.ledgerIO = ledgerIO
    }
}

/// Runs the pipeline (on its own thread, as a `Service`) and the HTTP server in one
/// `ServiceGroup`, handles SIGTERM/SIGINT, and says how the process should exit.
///
/// First signal: graceful shutdown of the group — the pipeline stops consuming, makes the
/// batch in hand durable, publishes it and returns; then the HTTP server stops; then the
/// intake producer is flushed. Exit 0. If that takes longer than `shutdownTimeoutSeconds`,
/// exit 1 at once. A second signal: exit at once with 128 + the signal number (safe: the
/// ledger is the truth, and the next start resumes from it).
public enum ProcessorRunner {
    /// Exit statuses.
    public static let exitClean: Int32 = 0
    public static let exitFailed: Int32 = 1
    public static let exitConfiguration: Int32 = 2

    public static func run(_ options: RunnerOptions, logger: Logger) async -> Int32 {
        var config = options.pipeline
        // Balances are kept for the API only: without --http the shards skip that work.
        let status = config.status ?? ProcessorStatus(tracksCustomers: options.http != nil)
        config.status = status
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var intake: CommandIntake?
        let serverUp = ServerGate()
        let outcome = RunOutcome()

        if let http = options.http {
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets[MetricNames.ledgerFsync] = [
                .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
            ]
            factory.valueHistogramBuckets[MetricNames.batchRecords] = [1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000]
            MetricsSystem.bootstrap(factory)

            if let topic = options.commandTopic {
                var producerConfig = KafkaProducerConfig(bootstrapServers: config.brokers)
                producerConfig.clientID = "drawdown-http"
                producerConfig.additionalProperties = options.kafkaProperties
                do {
                    intake = try CommandIntake(
                        topic: topic, producerConfig: producerConfig, priceBook: config.settings.priceBook, logger: logger)
                } catch {
                    logger.error("command intake: cannot create its producer: \(error)")
                    return exitFailed
                }
            }
            let ledger = CustomerLedgerIndex(dataDirectory: config.dataDirectory, io: options.ledgerIO)
            let deps = APIDependencies(
                status: status, ledger: ledger, commands: intake, metrics: registry, token: options.apiToken)
            let router = APIRouter.make(deps, logger: logger)
            var serverLogger = logger
            serverLogger.logLevel = max(logger.logLevel, .notice)  // Hummingbird logs per request below that.
            let app = Application(
                router: router,
                configuration: ApplicationConfiguration(address: .hostname(http.host, port: http.port), serverName: "drawdown"),
                onServerRunning: { channel in
                    let address = channel.localAddress.map { "\($0.ipAddress ?? http.host):\($0.port ?? http.port)" } ?? "\(http.host):\(http.port)"
                    logger.info("http: listening on \(address)")
                    serverUp.open()
                },
                logger: serverLogger)
            services.append(.init(
                service: HTTPServerService(app: app, outcome: outcome, serverUp: serverUp),
                successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        } else {
            serverUp.open()
        }

        let pipeline = Pipeline(config: config, logger: logger)
        services.append(.init(
            service: PipelineService(pipeline: pipeline, serverUp: serverUp, outcome: outcome),
            successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: quiet(logger)))

        let signals = SignalHandling(group: group, timeoutSeconds: options.shutdownTimeoutSeconds, logger: logger)
        let signalSources = signals.install()
        defer { for source in signalSources { source.cancel() } }

        do {
            try await group.run()
        } catch {
            // Each service records its own failure in `outcome`; the group's error repeats it.
        }
        intake?.shutdown(timeoutMs: 10_000)

        if let failure = outcome.httpFailure, !outcome.pipelineStarted {
            logger.error("http: cannot serve on \(options.http.map { "\($0.host):\($0.port)" } ?? "?"): \(failure)")
            return exitConfiguration
        }
        if let failure = outcome.pipelineFailure {
            FileHandle.standardError.write(Data("drawdown run: \(failure)\n".utf8))
            return exitFailed
        }
        if let failure = outcome.httpFailure {
            logger.error("http server failed: \(failure)")
            return exitFailed
        }
        logger.info("shutdown complete")
        return exitClean
    }

    /// The group's own lifecycle lines are debug detail.
    private static func quiet(_ logger: Logger) -> Logger {
        var l = logger
        l.logLevel = max(logger.logLevel, .warning)
        return l
    }
}

/// What happened to the services, for the exit status.
final class RunOutcome: Sendable {
    private struct State {
        var pipelineStarted = false
        var pipelineFailure: String?
        var httpFailure: String?
    }
    private let state = Mutex(State())
    var pipelineStarted: Bool { state.withLock { $0.pipelineStarted } }
    var pipelineFailure: String? { state.withLock { $0.pipelineFailure } }
    var httpFailure: String? { state.withLock { $0.httpFailure } }
    func markPipelineStarted() { state.withLock { $0.pipelineStarted = true } }
    func pipelineFailed(_ text: String) { state.withLock { $0.pipelineFailure = text } }
    func httpFailed(_ text: String) { state.withLock { $0.httpFailure = text } }
}

/// Opened once the HTTP server listens (or at once without one): the pipeline starts only then,
/// so a port that cannot be bound stops the process before the ledger is touched.
final class ServerGate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func open() {
        continuation.yield()
        continuation.finish()
    }

    /// The server will not come up: waiters get false.
    func fail() { continuation.finish() }

    /// True once open; false after `fail()` or when the waiting task was cancelled first.
    func wait() async -> Bool {
        for await _ in stream { return true }
        return false
    }
}

/// The pipeline as a `Service`: `run()` blocks a dedicated thread (it becomes the poll
/// thread); graceful shutdown or cancellation asks it to stop cleanly.
struct PipelineService: Service {
    let pipeline: Pipeline
    let serverUp: ServerGate
    let outcome: RunOutcome

    func run() async throws {
        let serverUp = self.serverUp
        let up = await withGracefulShutdownHandler {
            await serverUp.wait()
        } onGracefulShutdown: {
            serverUp.fail()
        }
        guard up else { return }
        outcome.markPipelineStarted()
        let pipeline = self.pipeline
        do {
            try await withTaskCancellationOrGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let thread = Thread {
                        continuation.resume(with: Result { _ = try pipeline.run() })
                    }
                    thread.name = "drawdown-poll"
                    thread.start()
                }
            } onCancelOrGracefulShutdown: {
                pipeline.requestStop()
            }
        } catch {
            outcome.pipelineFailed("\(error)")
            throw error
        }
    }
}

/// The Hummingbird application, recording why it failed (a port that cannot be bound).
struct HTTPServerService<App: ApplicationProtocol>: Service {
    let app: App
    let outcome: RunOutcome
    let serverUp: ServerGate

    func run() async throws {
        do {
            try await app.run()
        } catch {
            outcome.httpFailed("\(error)")
            serverUp.fail()
            throw error
        }
    }
}

/// SIGTERM/SIGINT: the first starts the graceful shutdown and a deadline; the second exits.
final class SignalHandling: Sendable {
    private let group: ServiceGroup
    private let timeoutSeconds: Double
    private let logger: Logger
    private let queue = DispatchQueue(label: "drawdown.signals")
    private let received = Atomic<Int>(0)

    init(group: ServiceGroup, timeoutSeconds: Double, logger: Logger) {
        self.group = group
        self.timeoutSeconds = timeoutSeconds
        self.logger = logger
    }

    /// Installs the handlers; cancel the returned sources to remove them.
    func install() -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: queue)
            source.setEventHandler { [self] in handle(signo) }
            source.resume()
            return source
        }
    }

    private func handle(_ signo: Int32) {
        let name = signo == SIGTERM ? "SIGTERM" : "SIGINT"
        let count = received.add(1, ordering: .relaxed).newValue
        if count > 1 {
            logger.warning("\(name) again: exiting at once (the ledger is the truth; the next start resumes from it)")
            _exit(128 + signo)
        }
        logger.info("\(name): stopping — finishing the batch in hand, then exiting (again to exit at once)")
        let group = self.group
        Task { await group.triggerGracefulShutdown() }
        let timeout = timeoutSeconds
        let logger = self.logger
        queue.asyncAfter(deadline: .now() + timeout) {
            logger.error("clean stop did not finish within \(timeout) s: exiting at once")
            _exit(1)
        }
    }
}
