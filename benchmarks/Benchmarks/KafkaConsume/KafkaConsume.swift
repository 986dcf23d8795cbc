import Benchmark
import DrawdownKafka
import Foundation

// Our consumer vs the same drain written directly against librdkafka (KafkaBenchmarkBaseline),
// in the same run, against the same broker: librdkafka's mock cluster (what `drawdown
// dev-broker` runs), hosted in this process.
//
// 1,000,000 records of ~150 bytes (16-byte key + 134-byte value) over 64 partitions: about
// 2.4 MB per partition, below the mock's 5 MiB / 100k-batch retention, and the setup checks
// that every partition's low watermark is 0 before anything is measured.

enum KafkaConsumeBench {
    static let topic = "bench"
    static let partitions: Int32 = 64
    static let records = 1_000_000
    static let valueBytes = 134
    static let maxRecordsPerBatch = 10_000

    /// The broker and its data, made once per process.
    static let fixture: Fixture = {
        do { return try Fixture() } catch { fatalError("benchmark setup failed: \(error)") }
    }()

    final class Fixture: Sendable {
        let cluster: KafkaMockCluster
        init() throws {
            cluster = try KafkaMockCluster(brokers: 1)
            try cluster.createTopic(KafkaConsumeBench.topic, partitions: KafkaConsumeBench.partitions)
            let producer = try KafkaProducer(config: {
                var c = KafkaProducerConfig(bootstrapServers: cluster.bootstrapServers)
                c.lingerMs = 20
                return c
            }())
            let padding = [UInt8](repeating: UInt8(ascii: "x"), count: KafkaConsumeBench.valueBytes - 16)
            var failures = 0
            for i in 0..<KafkaConsumeBench.records {
                let key = Array(String(format: "customer-%07d", i % 1_000_000).utf8)
                let value = Array(String(format: "%016d", i).utf8) + padding
                let record = KafkaProducerRecord(
                    topic: KafkaConsumeBench.topic, partition: Int32(i % Int(KafkaConsumeBench.partitions)), key: key, value: value)
                while !(try Self.trySend(producer, record, token: UInt64(i))) {
                    failures += producer.poll(timeoutMs: 50).filter { !$0.succeeded }.count
                }
                if i % 10_000 == 0 { failures += producer.poll(timeoutMs: 0).filter { !$0.succeeded }.count }
            }
            try producer.flush(timeoutMs: 120_000)
            failures += producer.poll(timeoutMs: 0).filter { !$0.succeeded }.count
            precondition(failures == 0, "\(failures) records not delivered")
            var total: Int64 = 0
            for p in 0..<KafkaConsumeBench.partitions {
                let w = try producer.queryWatermarks(KafkaTopicPartition(topic: KafkaConsumeBench.topic, partition: p))
                precondition(w.low == 0, "partition \(p): low watermark \(w.low): the mock dropped data")
                total += w.high
            }
            precondition(total == Int64(KafkaConsumeBench.records), "expected \(KafkaConsumeBench.records) records, found \(total)")
        }

        /// false when the producer's queue is full (poll, then send again).
        static func trySend(_ producer: KafkaProducer, _ record: KafkaProducerRecord, token: UInt64) throws(KafkaError) -> Bool {
            do {
                try producer.send(record, token: token)
                return true
            } catch {
                if error.code == .queueFull { return false }
                throw error
            }
        }

        var consumerConfig: KafkaConsumerConfig {
            var c = KafkaConsumerConfig(bootstrapServers: cluster.bootstrapServers)
            c.enablePartitionEOF = false
            return c
        }
    }

    /// Drains everything with `KafkaConsumer`; returns records seen (checked by the caller).
    static func drainWithDrawdownKafka(_ config: KafkaConsumerConfig) throws -> Int {
        let consumer = try KafkaConsumer(config: config)
        var offsets: [KafkaTopicPartition: KafkaOffset] = [:]
        for p in 0..<partitions { offsets[KafkaTopicPartition(topic: topic, partition: p)] = .beginning }
        try consumer.assign(offsets)
        var batch = KafkaRecordBatch()
        var received = 0
        var bytes = 0
        var offsetSum: Int64 = 0
        var emptyInARow = 0
        while received < records && emptyInARow < 600 {
            consumer.consumeBatch(into: &batch, maxRecords: maxRecordsPerBatch, timeoutMs: 100)
            emptyInARow = batch.isEmpty ? emptyInARow + 1 : 0
            for i in batch.indices { offsetSum &+= batch.offset(at: i) }
            received += batch.count
            bytes += batch.byteCount
        }
        blackHole(bytes)
        blackHole(offsetSum)
        try consumer.close()
        return received
    }

    static func drainRaw(_ config: KafkaConsumerConfig) throws -> Int {
        let result = try KafkaBenchmarkBaseline.rawDrain(
            config: config, topic: topic, partitions: partitions, records: records, maxRecordsPerBatch: maxRecordsPerBatch)
        blackHole(result.bytes)
        blackHole(result.offsetSum)
        return result.records
    }
}

/// Records/s of one drain, from the time it took.
func recordsPerSecond(_ records: Int, _ elapsed: Duration) -> Int {
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Int(Double(records) / seconds)
}

/// CPU time of the whole process (consumer, librdkafka's threads and the in-process broker):
/// less sensitive than wall time to other work on a shared machine.
func processCPUTime() -> Duration {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return .seconds(ts.tv_sec) + .nanoseconds(ts.tv_nsec)
}

let oursCPUMetric = BenchmarkMetric.custom("records/CPU-s DrawdownKafka", polarity: .prefersLarger, useScalingFactor: false)
let rawCPUMetric = BenchmarkMetric.custom("records/CPU-s raw C", polarity: .prefersLarger, useScalingFactor: false)
let cpuRatioMetric = BenchmarkMetric.custom("ours/raw CPU (permille)", polarity: .prefersLarger, useScalingFactor: false)
let oursMetric = BenchmarkMetric.custom("records/s DrawdownKafka", polarity: .prefersLarger, useScalingFactor: false)
let rawMetric = BenchmarkMetric.custom("records/s raw C", polarity: .prefersLarger, useScalingFactor: false)
let ratioMetric = BenchmarkMetric.custom("ours/raw (permille)", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    // One iteration drains the 1,000,000 records twice, once per implementation, alternating
    // which goes first, and records both rates and their ratio: same process, same broker,
    // same data, neighbouring moments.
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, oursMetric, rawMetric, ratioMetric, oursCPUMetric, rawCPUMetric, cpuRatioMetric],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(180),
        maxIterations: 12)

    Benchmark("KafkaConsume.1M-records-64-partitions", configuration: configuration) { benchmark in
        let config = KafkaConsumeBench.fixture.consumerConfig
        /// Runs one drain; returns (records/s wall, records per CPU-second).
        func measure(_ drain: (KafkaConsumerConfig) throws -> Int) rethrows -> (Int, Int) {
            let clock = ContinuousClock()
            let start = clock.now
            let cpuStart = processCPUTime()
            let n = try drain(config)
            let rates = (recordsPerSecond(n, clock.now - start), recordsPerSecond(n, processCPUTime() - cpuStart))
            precondition(n == KafkaConsumeBench.records, "drained \(n)")
            return rates
        }
        var (ours, oursCPU) = (0, 0)
        var (raw, rawCPU) = (0, 0)
        benchmark.startMeasurement()
        if Bool.random() {
            (ours, oursCPU) = try measure(KafkaConsumeBench.drainWithDrawdownKafka)
            (raw, rawCPU) = try measure(KafkaConsumeBench.drainRaw)
        } else {
            (raw, rawCPU) = try measure(KafkaConsumeBench.drainRaw)
            (ours, oursCPU) = try measure(KafkaConsumeBench.drainWithDrawdownKafka)
        }
        benchmark.stopMeasurement()
        benchmark.measurement(oursMetric, ours)
        benchmark.measurement(rawMetric, raw)
        benchmark.measurement(ratioMetric, ours * 1_000 / max(raw, 1))
        benchmark.measurement(oursCPUMetric, oursCPU)
        benchmark.measurement(rawCPUMetric, rawCPU)
        benchmark.measurement(cpuRatioMetric, oursCPU * 1_000 / max(rawCPU, 1))
    }
}
