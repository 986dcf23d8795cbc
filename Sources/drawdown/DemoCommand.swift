import ArgumentParser
import DrawdownCore
import DrawdownKafka
import Foundation

/// `drawdown demo`: a dev broker in this process, a synthetic workload produced to it at a
/// chosen rate, and the engine consuming it partition by partition, with live progress.
///
/// Preview: until `drawdown run` lands (durable ledger batches, checkpointed offsets,
/// outputs to Kafka), the demo applies in memory and ends with a summary and balances.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a synthetic workload through a local dev broker and the engine, with live progress.")

    @Option(help: "Messages to produce.") var messages = 200_000
    @Option(help: "Distinct customers.") var customers = 5_000
    @Option(help: "Partitions of the usage topic.") var partitions: Int32 = 8
    @Option(help: "Messages per second to produce (0: as fast as possible).") var rate = 0
    @Option(help: "Workload seed (the same seed gives the same stream).") var seed: UInt64 = 1

    /// Give up waiting for records this long after the producer finished.
    static let idleSecondsMax: TimeInterval = 15

    func run() throws {
        let topic = "usage"
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic(topic, partitions: partitions)
        log("dev broker at \(cluster.bootstrapServers); topic \(topic) with \(partitions) partitions")

        var spec = WorkloadSpec(seed: seed, customers: customers, messages: messages)
        spec.malformedPer10k = 20
        let produced = ProducedCount()
        let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: cluster.bootstrapServers))
        let producerThread = Thread { [spec, rate] in
            produce(spec, rate: rate, producer: producer, topic: topic, produced: produced)
        }
        producerThread.start()

        var config = KafkaConsumerConfig(bootstrapServers: cluster.bootstrapServers, groupID: "drawdown-demo")
        config.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(config: config)
        try consumer.subscribe([topic])

        var engines: [Int32: PartitionEngine] = [:]
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var batch = KafkaRecordBatch()
        var consumed = 0, entries = 0, conflicts = 0
        let start = Date()
        var lastReport = start
        var lastConsumed = 0
        var lastProgress = start
        while true {
            consumer.consumeBatch(into: &batch, maxRecords: 10_000, timeoutMs: 100)
            if !batch.isEmpty { lastProgress = Date() }
            for record in batch {
                consumed += 1
                var engine = engines[record.partition] ?? PartitionEngine(partition: record.partition)
                let value = Array(record.value ?? [])
                let key = record.key.map { Array($0) }
                let result = value.withUnsafeBufferPointer { v in
                    key.map { k in k.withUnsafeBufferPointer { decoder.decode(v, key: $0) } } ?? decoder.decode(v)
                }
                switch result {
                case .success(let message):
                    if engine.apply(message) == .conflict { conflicts += 1 }
                case .failure:
                    engine.countRejected()
                }
                entries += engine.entries.count
                engine.discardOutput()
                engines[record.partition] = engine
            }
            let now = Date()
            if now.timeIntervalSince(lastReport) >= 1 {
                let rateNow = Double(consumed - lastConsumed) / now.timeIntervalSince(lastReport)
                let totals = engines.values.reduce(into: (0 as UInt64, 0 as UInt64)) { $0.0 += $1.duplicates; $0.1 += $1.rejected }
                log(
                    String(
                        format: "%8d consumed  %8.0f events/s  lag %7d  %8d entries  %6d duplicates  %5d rejected",
                        consumed, rateNow, produced.value - consumed, entries, totals.0, totals.1))
                lastReport = now
                lastConsumed = consumed
            }
            if produced.finished && consumed >= produced.value { break }
            if produced.finished && Date().timeIntervalSince(lastProgress) > DemoCommand.idleSecondsMax {
                log("no records for \(Int(DemoCommand.idleSecondsMax)) s: \(produced.value - consumed) produced records never arrived")
                break
            }
        }
        producerThread.cancel()
        try consumer.close()

        let seconds = Date().timeIntervalSince(start)
        let ordered = engines.keys.sorted().map { engines[$0]! }
        let applied = ordered.reduce(0) { $0 + $1.applied }
        let duplicates = ordered.reduce(0) { $0 + $1.duplicates }
        let rejected = ordered.reduce(0) { $0 + $1.rejected }
        log("done: \(consumed) records in \(String(format: "%.1f", seconds)) s (\(Int(Double(consumed) / seconds)) events/s)")
        log("applied \(applied), duplicates caught \(duplicates) (\(conflicts) conflicting), rejected \(rejected), ledger entries \(entries)")
        for engine in ordered.prefix(3) {
            guard let customer = engine.customerIDs.first else { continue }
            let balances = engine.balances(customer: customer).map { "\($0.currency): available \($0.available), overage \($0.overage)" }
            log("  \(customer) (partition \(engine.partition)): " + balances.joined(separator: "; "))
        }
    }
}

/// How many records the producer thread has handed to the broker.
final class ProducedCount: @unchecked Sendable {
    // @unchecked Sendable: every access goes through `lock`.
    private let lock = NSLock()
    private var count = 0
    private var done = false
    var value: Int { lock.withLock { count } }
    var finished: Bool { lock.withLock { done } }
    func set(_ value: Int, finished: Bool) { lock.withLock { count = value; done = finished } }
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
                let due = start.addingTimeInterval(Double(sent) / Double(rate))
                let wait = due.timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
    }
    try? producer.flush(timeoutMs: 60_000)
    produced.set(sent, finished: true)
}

private func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
