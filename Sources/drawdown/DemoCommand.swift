import ArgumentParser
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import Foundation
import Logging
import Synchronization

/// `drawdown demo` (what `make demo` runs): a dev broker in this process, a synthetic
/// workload (customers, grants, retries, conflicting resends, a few malformed records)
/// produced at a chosen rate, and the real pipeline of `drawdown run` — durable ledger
/// batches under a local data directory — with live progress, then a summary, a
/// `ledger verify` and a few customers' balances.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a synthetic workload through a local dev broker and the processor, with live progress.")

    @Option(help: "Messages to produce.") var messages = 200_000
    @Option(help: "Distinct customers.") var customers = 5_000
    @Option(help: "Partitions of the usage topic.") var partitions: Int32 = 8
    @Option(help: "Messages per second to produce (0: as fast as possible).") var rate = 0
    @Option(help: "Workload seed (the same seed gives the same stream).") var seed: UInt64 = 1
    @Option(name: .customLong("data-dir"), help: "Ledger directory (default: a new temporary directory).")
    var dataDir: String?

    /// Give up waiting for the processor this long after the producer finished.
    static let idleSecondsMax: TimeInterval = 60

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .notice
            return handler
        }
        let topic = "usage"
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic(topic, partitions: partitions)
        for output in ["balance-changes", "alerts", "drawdown.dead-letters"] { try cluster.createTopic(output, partitions: partitions) }
        let directory = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("drawdown-demo-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        say("dev broker at \(cluster.bootstrapServers); topic \(topic) with \(partitions) partitions; ledger in \(directory)")

        var spec = WorkloadSpec(seed: seed, customers: customers, messages: messages)
        spec.malformedPer10k = 20
        let produced = ProducedCount()
        var producerConfig = KafkaProducerConfig(bootstrapServers: cluster.bootstrapServers)
        // The broker in this process goes away at the end, before this producer does.
        producerConfig.additionalProperties["log.connection.close"] = "false"
        let producer = try KafkaProducer(config: producerConfig)
        let producerThread = Thread { [spec, rate] in
            produce(spec, rate: rate, producer: producer, topic: topic, produced: produced)
        }
        producerThread.start()

        let settings = try EngineSettings(config: EngineConfig(), priceBookJSON: Array(Workload.priceBookJSON.utf8))
        var config = PipelineConfig(
            brokers: cluster.bootstrapServers, topics: [topic], dataDirectory: directory, settings: settings,
            shards: ProcessInfo.processInfo.activeProcessorCount)
        config.groupID = "drawdown-demo"
        let progress = Mutex(BatchProgress())
        let recordsDone = Atomic<Int>(0)
        config.batchPublished = { batch in
            recordsDone.add(batch.records, ordering: .relaxed)
            progress.withLock { $0 = batch }
        }
        let pipeline = Pipeline(config: config, logger: Logger(label: "drawdown.demo"))
        let outcome = Mutex<Result<PipelineSummary, any Error>?>(nil)
        let runner = Thread {
            let result = Result { try pipeline.run() }
            outcome.withLock { $0 = result }
        }
        runner.start()

        let start = Date()
        var last = (time: start, records: 0)
        var lastAdvance = start
        while outcome.withLock({ $0 == nil }) {
            Thread.sleep(forTimeInterval: 1)
            let now = Date()
            let done = recordsDone.load(ordering: .relaxed)
            if done > last.records { lastAdvance = now }
            let latest = progress.withLock { $0 }
            say(
                String(
                    format: "%8d events  %8.0f events/s  lag %7d  batch %5d  %6d duplicates  %5d rejected",
                    done, Double(done - last.records) / now.timeIntervalSince(last.time), produced.value - done,
                    Int(latest.batch), Int(latest.duplicates), Int(latest.rejected)))
            last = (now, done)
            if produced.finished && done >= produced.value { pipeline.requestStop() }
            if produced.finished && now.timeIntervalSince(lastAdvance) > DemoCommand.idleSecondsMax {
                say("no progress for \(Int(DemoCommand.idleSecondsMax)) s: stopping")
                pipeline.requestStop()
            }
        }
        producerThread.cancel()
        let summary = try outcome.withLock { $0! }.get()
        let latest = progress.withLock { $0 }
        say(
            "done: \(summary.recordsApplied) records in \(String(format: "%.1f", summary.seconds)) s, "
                + "\(summary.batchesWritten) durable batches, \(summary.outputsPublished) outputs published")
        say("applied \(latest.applied), duplicates caught \(latest.duplicates), rejected \(latest.rejected) (dead letters)")
        say("consume to durable: \(summary.consumeToDurable); consume to balance changes delivered: \(summary.consumeToDelivered)")

        // The same check an operator runs: storage, chain and payload invariants.
        let verify = Process()
        verify.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if !FileManager.default.isExecutableFile(atPath: verify.executableURL!.path) {
            verify.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        verify.arguments = ["ledger", "verify", "--data-dir", directory]
        try verify.run()
        verify.waitUntilExit()

        let rebuilt = try LedgerReplay.rebuild(dataDirectory: directory)
        for engine in rebuilt.engines.prefix(3) {
            guard let customer = engine.customerIDs.first else { continue }
            let balances = engine.balances(customer: customer).map { "\($0.currency): available \($0.available), overage \($0.overage)" }
            say("  \(customer) (partition \(engine.partition)): " + balances.joined(separator: "; "))
        }
        if verify.terminationStatus != 0 { throw ExitCode(verify.terminationStatus) }
    }
}

/// How many records the producer thread has handed to the broker.
final class ProducedCount: Sendable {
    private let state = Mutex((count: 0, finished: false))
    var value: Int { state.withLock { $0.count } }
    var finished: Bool { state.withLock { $0.finished } }
    func set(_ value: Int, finished: Bool) { state.withLock { $0 = (value, finished) } }
}

private func produce(_ spec: WorkloadSpec, rate: Int, producer: KafkaProducer, topic: String, produced: ProducedCount) {
    var generator = WorkloadGenerator(spec)
    var line: [UInt8] = []
    var sent = 0
    let start = Date()
    while let record = generator.next(into: &line) {
        if line.last == 0x0A { line.removeLast() }
        let key = record.message.map { Array($0.customer.utf8) }
        while true {
            do {
                try producer.send(KafkaProducerRecord(topic: topic, key: key, value: line), token: UInt64(sent))
                break
            } catch {
                _ = producer.poll(timeoutMs: 50)  // queue full: let deliveries drain
            }
        }
        _ = producer.takeReports()
        line.removeAll(keepingCapacity: true)
        sent += 1
        if sent % 1_000 == 0 {
            try? producer.flush(timeoutMs: 30_000)
            produced.set(sent, finished: false)
            if rate > 0 {
                let wait = start.addingTimeInterval(Double(sent) / Double(rate)).timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
    }
    try? producer.flush(timeoutMs: 60_000)
    produced.set(sent, finished: true)
}

private func say(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
