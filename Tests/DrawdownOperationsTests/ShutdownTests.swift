import DrawdownCore
import DrawdownTestSupport
import Foundation
import Testing

/// SIGTERM in the middle of `drawdown run --http`: exit 0, everything handed to the shards is
/// durable, and a restart ends with, partition by partition, the ledger an uninterrupted run
/// writes (no loss, no double charge).
@Suite(.serialized) struct ShutdownTests {
    static let partitions: Int32 = 4

    @Test(.timeLimit(.minutes(15))) func sigtermMidRunExitsZeroDurablyAndARestartContinuesExactly() throws {
        let dir = try OpsTemporaryDirectory("sigterm")
        defer { dir.remove() }
        let broker = try TestDevBroker(topics: [
            "usage:\(Self.partitions)", "credit-commands:\(Self.partitions)", "balance-changes:8", "alerts:4", "drawdown.dead-letters:4",
        ])
        defer { broker.stop() }
        let prices = dir.path("prices.json")
        try Workload.priceBookJSON.write(toFile: prices, atomically: true, encoding: .utf8)
        let records = Workload.records(WorkloadSpec(seed: 11, customers: 500, messages: 40_000))
        try WorkloadProducer.produce(records, topic: "usage", bootstrap: broker.bootstrapServers)
        func args(_ data: String, group: String) -> [String] {
            ["--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", data, "--prices", prices,
             "--group", group, "--batch-max", "200", "--shards", "2"]
        }

        // The uninterrupted reference.
        let reference = dir.path("reference")
        let done = try runProcess(drawdownBinaryURL(), ["run"] + args(reference, group: "reference") + ["--stop-at-end"])
        #expect(done.status == 0, "\(done.stderrText.suffix(3_000))")

        // Interrupted: SIGTERM as soon as records are flowing.
        let data = dir.path("interrupted")
        let run = try RunningProcessor(args(data, group: "interrupted") + ["--http", "127.0.0.1:0"], logPath: dir.path("run.log"))
        var consumed = 0.0
        try run.waitFor("records flowing") {
            consumed = PrometheusText.value(try run.metrics(), "drawdown_records_consumed_total")
            return consumed > 0
        }
        let status = try run.stop(signal: SIGTERM)
        #expect(status == 0, "\(run.log.suffix(3_000))")
        #expect(run.log.contains("shutdown complete"), "\(run.log.suffix(2_000))")

        // Everything handed over before the signal is in the durable ledger.
        let verify = try drawdown(["ledger", "verify", "--data-dir", data]).stdoutText
        let inputs = Self.inputs(inVerifySummary: verify)
        #expect(inputs >= Int(consumed), "\(inputs) inputs durable, \(Int(consumed)) consumed before SIGTERM: \(verify)")
        print("SIGTERM after \(Int(consumed)) consumed records: \(inputs) of \(records.count) inputs durable")

        // A restart completes the stream: per partition, the reference's ledger exactly.
        let rest = try runProcess(drawdownBinaryURL(), ["run"] + args(data, group: "interrupted-2") + ["--stop-at-end"])
        #expect(rest.status == 0, "\(rest.stderrText.suffix(3_000))")
        let want = try Self.ledgerByPartition(reference)
        let got = try Self.ledgerByPartition(data)
        #expect(want.keys.sorted() == got.keys.sorted())
        for (partition, entries) in want {
            #expect(got[partition] == entries, "partition \(partition): \(got[partition]?.count ?? 0) entries, reference \(entries.count)")
        }
        #expect(Self.inputs(inVerifySummary: try drawdown(["ledger", "verify", "--data-dir", data]).stdoutText) == records.count)
    }

    /// `ledger ok: … N inputs …` → N.
    static func inputs(inVerifySummary text: String) -> Int {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "," })
        for (i, word) in words.enumerated() where word.hasPrefix("input") && i > 0 {
            if let n = Int(words[i - 1]) { return n }
        }
        return -1
    }

    static func ledgerByPartition(_ data: String) throws -> [Int: [[String: String]]] {
        var out: [Int: [[String: String]]] = [:]
        for entry in try LedgerComparison.jsonLines(drawdown(["ledger", "--data-dir", data]).stdout) {
            out[entry["partition"] as! Int, default: []].append(LedgerComparison.normalized(entry))
        }
        return out
    }
}

/// A second signal exits at once (128 + SIGTERM), and that is safe: the ledger verifies and a
/// restart runs to the end.
@Suite(.serialized) struct SecondSignalTests {
    @Test(.timeLimit(.minutes(5))) func aSecondSignalExitsAtOnceAndTheLedgerStaysSound() throws {
        let dir = try OpsTemporaryDirectory("second-signal")
        defer { dir.remove() }
        let broker = try TestDevBroker(topics: ["usage:2", "credit-commands:2", "balance-changes:2", "alerts:2", "drawdown.dead-letters:2"])
        defer { broker.stop() }
        let records = Workload.records(WorkloadSpec(seed: 5, customers: 50, messages: 3_000))
        let prices = dir.path("prices.json")
        try Workload.priceBookJSON.write(toFile: prices, atomically: true, encoding: .utf8)
        try WorkloadProducer.produce(records, topic: "usage", bootstrap: broker.bootstrapServers)
        let args = ["--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", dir.path("data"), "--prices", prices, "--batch-max", "100"]
        let run = try RunningProcessor(args + ["--http", "127.0.0.1:0"], logPath: dir.path("run.log"))
        try run.waitUntilReady()
        // Slow broker responses keep the clean stop busy (last publish, leaving the group)
        // long enough for a second signal to arrive during it.
        #expect(try broker.control("rtt 1 4000") == "ok")
        kill(run.process.processIdentifier, SIGTERM)
        try run.waitFor("the first SIGTERM handled") { run.log.contains("SIGTERM: stopping") }
        let status = try run.stop(signal: SIGTERM)
        #expect(try broker.control("rtt 1 0") == "ok")
        #expect(status == 128 + SIGTERM, "\(run.log.suffix(2_000))")
        #expect(run.log.contains("exiting at once"))
        // (A record being written at that instant is a torn tail, which the restart cuts.)
        let rest = try runProcess(drawdownBinaryURL(), ["run"] + args + ["--stop-at-end"])
        #expect(rest.status == 0, "\(rest.stderrText.suffix(2_000))")
        #expect(ShutdownTests.inputs(inVerifySummary: try drawdown(["ledger", "verify", "--data-dir", dir.path("data")]).stdoutText) == records.count)
    }
}
