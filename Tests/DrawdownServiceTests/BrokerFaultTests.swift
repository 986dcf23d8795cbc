import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown run` under broker faults injected through the dev broker's control channel:
/// request errors on Fetch, Produce and OffsetCommit, and the broker down then up. The
/// processor must recover by itself, with no loss and no double charge: its ledger equals
/// `drawdown process` over each partition's records, and every sequence reaches the
/// balance-change topic.
@Suite(.serialized)
struct BrokerFaultTests {
    static let partitions: Int32 = 8

    func checkAgainstOffline(_ broker: TestDevBroker, dataDir: String, messages: Int) throws {
        let input = try RunSupport.drain(topic: "usage", partitions: Self.partitions, bootstrap: broker.bootstrapServers)
        #expect(input.values.reduce(0) { $0 + $1.count } == messages)
        let expected = RunSupport.expected(input, partitions: Self.partitions)
        let ledger = try RunSupport.ledgerEntries(dataDirectory: dataDir)
        for p in 0..<Self.partitions {
            let got = ledger[p] ?? [], want = expected.entries[p] ?? []
            #expect(got.count == want.count, "partition \(p): \(got.count) entries, drawdown process gives \(want.count)")
            #expect(got == want, "partition \(p): entries differ from drawdown process")
        }
        try RunPipelineTests().checkBalanceChanges(broker, ledger: ledger)
    }

    @Test("request errors on Fetch, Produce and OffsetCommit: recovered, no loss, no double charge")
    func requestErrors() throws {
        let broker = try TestDevBroker(topics: ["usage:8"] + RunSupport.outputTopics)
        defer { broker.stop() }
        let dir = RunSupport.temporaryDirectory("broker-errors")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prices = try RunSupport.writePriceBook(in: dir)
        let spec = WorkloadSpec(seed: 21, customers: 400, messages: 12_000)
        try RunSupport.produce(Workload.records(spec), topic: "usage", bootstrap: broker.bootstrapServers)

        // Retriable errors the clients must ride through; queued before the processor starts,
        // so they hit its first fetches, its output produces and its offset commits.
        #expect(try broker.control("error Fetch 30 NOT_LEADER_FOR_PARTITION") == "ok")
        #expect(try broker.control("errors Fetch REQUEST_TIMED_OUT LEADER_NOT_AVAILABLE REQUEST_TIMED_OUT") == "ok")
        #expect(try broker.control("error Produce 20 NOT_LEADER_FOR_PARTITION") == "ok")
        #expect(try broker.control("errors Produce REQUEST_TIMED_OUT NOT_ENOUGH_REPLICAS") == "ok")
        #expect(try broker.control("error OffsetCommit 10 COORDINATOR_NOT_AVAILABLE") == "ok")

        let run = try RunSupport.runDrawdown(
            ["run", "--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", dir + "/data", "--prices", prices,
             "--group", "fault-errors", "--stop-at-end", "--batch-max", "2000"])
        #expect(run.status == 0, "drawdown run failed:\n\(run.stderr)")
        try checkAgainstOffline(broker, dataDir: dir + "/data", messages: spec.messages)
    }

    @Test("the broker down at start, up, down again, up: the processor waits and finishes")
    func brokerDownThenUp() throws {
        let broker = try TestDevBroker(topics: ["usage:8"] + RunSupport.outputTopics)
        defer { broker.stop() }
        let dir = RunSupport.temporaryDirectory("broker-down")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prices = try RunSupport.writePriceBook(in: dir)
        let spec = WorkloadSpec(seed: 22, customers: 400, messages: 12_000)
        try RunSupport.produce(Workload.records(spec), topic: "usage", bootstrap: broker.bootstrapServers)

        // Down before the processor starts, up after 4 s; down again 3 s later (during the
        // group join or the run) and up after 3 s more.
        #expect(try broker.control("down 1") == "ok")
        let schedule = DispatchGroup()
        DispatchQueue.global().async(group: schedule) {
            Thread.sleep(forTimeInterval: 4)
            _ = try? broker.control("up 1")
            Thread.sleep(forTimeInterval: 3)
            _ = try? broker.control("down 1")
            Thread.sleep(forTimeInterval: 3)
            _ = try? broker.control("up 1")
        }
        let run = try RunSupport.runDrawdown(
            ["run", "--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", dir + "/data", "--prices", prices,
             "--group", "fault-down", "--stop-at-end", "--batch-max", "2000"])
        schedule.wait()  // the broker is up again before the checks read from it
        #expect(run.status == 0, "drawdown run failed:\n\(run.stderr)")
        try checkAgainstOffline(broker, dataDir: dir + "/data", messages: spec.messages)
    }
}
