import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import DrawdownTestSupport
import Foundation

/// Helpers for the `drawdown run` end-to-end tests: produce a workload, run the built binary
/// with a deadline, drain topics, and compute what `drawdown process` gives per partition.
enum RunSupport {
    /// Output topics with enough partitions that the dev broker's retention (about 5 MiB a
    /// partition) keeps everything the tests read back.
    static let outputTopics = ["balance-changes:32", "alerts:4", "drawdown.dead-letters:4"]

    /// A fresh temporary directory.
    static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "drawdown-svc-\(name)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes the workload price book to a file in `directory`.
    static func writePriceBook(in directory: String) throws -> String {
        let path = directory + "/prices.json"
        try Data(Workload.priceBookJSON.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Produces `records` to `topic`, keyed by customer (see `WorkloadProducer`).
    static func produce(_ records: [(bytes: [UInt8], record: WorkloadRecord)], topic: String, bootstrap: String) throws {
        try WorkloadProducer.produce(records, topic: topic, bootstrap: bootstrap)
    }

    /// An in-process pipeline over topic `usage` with the workload's price book, 2 shards,
    /// batches of 500 records, stopping at the end.
    static func pipelineConfig(_ broker: TestDevBroker, dataDirectory: String, group: String) -> PipelineConfig {
        var config = PipelineConfig(
            brokers: broker.bootstrapServers, topics: ["usage"], dataDirectory: dataDirectory,
            settings: EngineSettings(config: EngineConfig(), priceBook: Workload.priceBook), shards: 2)
        config.batchEventsMax = 500
        config.stopAtEnd = true
        config.groupID = group
        return config
    }

    struct DrainedRecord {
        var partition: Int32
        var offset: Int64
        var key: [UInt8]?
        var value: [UInt8]
        var headers: [KafkaHeader]
    }

    /// Every record of `topic` (all `partitions`), per partition in offset order.
    static func drain(topic: String, partitions: Int32, bootstrap: String) throws -> [Int32: [DrainedRecord]] {
        let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
        var start: [KafkaTopicPartition: KafkaOffset] = [:]
        var ends: [KafkaTopicPartition: Int64] = [:]
        for p in 0..<partitions {
            let tp = KafkaTopicPartition(topic: topic, partition: p)
            start[tp] = .beginning
            let marks = try consumer.queryWatermarks(tp)
            if marks.low != 0 { throw TestFailure("\(tp): the broker dropped records (low watermark \(marks.low))") }
            ends[tp] = marks.high
        }
        try consumer.assign(start)
        var result: [Int32: [DrainedRecord]] = [:]
        var next: [Int32: Int64] = [:]
        let deadline = Date().addingTimeInterval(120)
        while ends.contains(where: { (next[$0.key.partition] ?? 0) < $0.value }) {
            if Date() > deadline { throw TestFailure("draining \(topic) timed out") }
            let batch = consumer.consumeBatch(maxRecords: 10_000, timeoutMs: 100)
            for record in batch {
                result[record.partition, default: []].append(
                    DrainedRecord(
                        partition: record.partition, offset: record.offset, key: record.key.map { Array($0) },
                        value: record.value.map { Array($0) } ?? [], headers: record.headers))
                next[record.partition] = record.offset + 1
            }
        }
        try consumer.close()
        return result
    }

    struct Expected {
        /// Per partition: the entries `drawdown process` writes over that partition's records.
        var entries: [Int32: [LedgerEntry]] = [:]
        var engines: [PartitionEngine] = []
        /// (partition, offset) → reject reason, for records not applied (and conflicts).
        var rejects: [Int64: String] = [:]
        var rejectCount = 0
    }

    /// Runs `OfflineProcessor` (what `drawdown process` runs) over each partition's records in
    /// offset order, as JSON lines.
    static func expected(_ input: [Int32: [DrainedRecord]], partitions: Int32) -> Expected {
        var result = Expected()
        for p in 0..<partitions {
            let records = input[p] ?? []
            var lines: [UInt8] = []
            for r in records {
                precondition(!r.value.contains(0x0A), "a record with a newline cannot be a JSON line")
                lines.append(contentsOf: r.value)
                lines.append(0x0A)
            }
            var processor = OfflineProcessor(priceBook: Workload.priceBook)
            var entries: [LedgerEntry] = []
            lines.withUnsafeBufferPointer { buffer in
                processor.run(buffer) { e, _ in entries.append(contentsOf: e) } rejected: { reject in
                    result.rejects[key(p, records[reject.line - 1].offset)] = reject.rejection.reason.rawValue
                    result.rejectCount += 1
                }
            }
            result.entries[p] = entries
            result.engines.append(processor.engine)
        }
        return result
    }

    static func key(_ partition: Int32, _ offset: Int64) -> Int64 { Int64(partition) << 40 | offset }

    /// Ledger entries per partition, in ledger order.
    static func ledgerEntries(dataDirectory: String) throws -> [Int32: [LedgerEntry]] {
        let ledger = try LedgerStore.open(dataDirectory: dataDirectory)
        var result: [Int32: [LedgerEntry]] = [:]
        try LedgerReplay.forEachEntry(in: ledger) { _, partition, entry in result[partition, default: []].append(entry) }
        return result
    }

    /// Runs the built `drawdown` with `arguments`; kills it after `timeout` seconds.
    static func runDrawdown(_ arguments: [String], timeout: TimeInterval = 300) throws -> RunResult {
        let process = Process()
        process.executableURL = drawdownBinaryURL()
        process.arguments = arguments
        let dir = temporaryDirectory("out")
        let outPath = dir + "/stdout", errPath = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestFailure("drawdown \(arguments.first ?? "") did not finish in \(Int(timeout)) s:\n" + String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
        }
        process.waitUntilExit()
        try out.close()
        try err.close()
        return RunResult(
            status: process.terminationStatus,
            stderr: String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
    }

    static func header(_ record: DrainedRecord, _ name: String) -> String? {
        record.headers.first { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }
}

struct RunResult {
    var status: Int32
    var stderr: String
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
