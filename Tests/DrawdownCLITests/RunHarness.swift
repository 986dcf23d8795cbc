import DrawdownCore
import DrawdownKafka
import DrawdownTestSupport
import Foundation

/// What the `drawdown run` tests of this target share: producing a workload, running the
/// binary (to the end, or to be killed), draining an output topic, reading segment records.
enum RunHarness {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Produces `records` to `topic` keyed by customer (see `WorkloadProducer`).
    static func produce(_ records: [(bytes: [UInt8], record: WorkloadRecord)], topic: String, bootstrap: String) throws {
        try WorkloadProducer.produce(records, topic: topic, bootstrap: bootstrap)
    }

    /// Low and high watermarks of every partition of `topic`.
    static func watermarks(topic: String, partitions: Int32, bootstrap: String) throws -> [KafkaWatermarks] {
        let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
        defer { try? consumer.close() }
        return try (0..<partitions).map { try consumer.queryWatermarks(KafkaTopicPartition(topic: topic, partition: $0)) }
    }

    /// Every record value of `topic` from the beginning to the high watermarks of now.
    static func drainValues(topic: String, partitions: Int32, bootstrap: String, deadlineSeconds: TimeInterval = 300) throws -> [[UInt8]] {
        let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
        defer { try? consumer.close() }
        var start: [KafkaTopicPartition: KafkaOffset] = [:]
        var ends: [Int32: Int64] = [:]
        for p in 0..<partitions {
            let tp = KafkaTopicPartition(topic: topic, partition: p)
            start[tp] = .beginning
            ends[p] = try consumer.queryWatermarks(tp).high
        }
        try consumer.assign(start)
        var next: [Int32: Int64] = [:]
        var values: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(deadlineSeconds)
        while ends.contains(where: { (next[$0.key] ?? 0) < $0.value }) {
            if Date() > deadline { throw Failure("draining \(topic) timed out") }
            for record in consumer.consumeBatch(maxRecords: 10_000, timeoutMs: 100) {
                values.append(record.value.map { Array($0) } ?? [])
                next[record.partition] = record.offset + 1
            }
        }
        return values
    }

    /// A `drawdown` subprocess whose standard error goes to a file (appended to).
    final class Child {
        let process = Process()
        let started = Date()

        init(_ arguments: [String], stderrPath: String) throws {
            if !FileManager.default.fileExists(atPath: stderrPath) {
                _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            }
            let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
            try err.seekToEnd()
            process.executableURL = drawdownBinaryURL()
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            try err.close()
        }

        var isRunning: Bool { process.isRunning }

        /// kill -9, then reap. Safe to call when it has already exited.
        func kill9() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        /// Waits up to `seconds`; kills it and throws if it is still running then.
        func wait(seconds: TimeInterval) throws -> Int32 {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                kill9()
                throw Failure("drawdown \(process.arguments?.first ?? "") still running after \(Int(seconds)) s")
            }
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit { kill9() }
    }

    /// Runs `drawdown run … --stop-at-end` to completion; returns its exit status and seconds.
    static func runToEnd(_ arguments: [String], stderrPath: String, timeout: TimeInterval = 600) throws -> (status: Int32, seconds: Double) {
        let child = try Child(arguments, stderrPath: stderrPath)
        let status = try child.wait(seconds: timeout)
        return (status, Date().timeIntervalSince(child.started))
    }

    static func text(_ path: String) -> String {
        String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }

    /// The records of a segment file: (batch number, start, end), read from the record headers
    /// (docs/ledger-format.md: length at byte 12, batch number at byte 16, little-endian).
    static func segmentRecords(_ path: String) throws -> [(batch: UInt64, start: Int64, end: Int64)] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func le(_ at: Int, _ count: Int) -> UInt64 {
            (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        var records: [(UInt64, Int64, Int64)] = []
        var at = 0
        while at + 96 <= bytes.count {
            let length = Int(le(at + 12, 4))
            guard length >= 96, at + length <= bytes.count else { break }
            records.append((le(at + 16, 8), Int64(at), Int64(at + length)))
            at += length
        }
        return records
    }

    /// The segment files of a data directory, in order.
    static func segments(dataDirectory: String) throws -> [String] {
        let ledger = dataDirectory + "/ledger"
        return try FileManager.default.contentsOfDirectory(atPath: ledger).filter { $0.hasSuffix(".seg") }.sorted().map { ledger + "/" + $0 }
    }

    /// The bytes of the ledger's segments together (how far a run got).
    static func ledgerBytes(dataDirectory: String) -> Int64 {
        ((try? segments(dataDirectory: dataDirectory)) ?? []).reduce(0) { total, path in
            total + ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }
}

