import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import DrawdownTestSupport
import Foundation
import Logging
import Testing

/// The pipeline in process, with `FaultInjectingStorageIO` under its ledger.
@Suite(.serialized)
struct StorageFaultTests {
    @Test("a failing fdatasync stops the pipeline: nothing of that batch is published or committed; a restart completes it")
    func fsyncFailureStops() throws {
        let broker = try TestDevBroker(topics: ["usage:8"] + RunSupport.outputTopics)
        defer { broker.stop() }
        let dir = RunSupport.temporaryDirectory("fault")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records = Workload.records(WorkloadSpec(seed: 21, customers: 400, messages: 20_000))
        try RunSupport.produce(records, topic: "usage", bootstrap: broker.bootstrapServers)

        func makeConfig(_ io: any StorageIO) -> PipelineConfig {
            var config = RunSupport.pipelineConfig(broker, dataDirectory: dir + "/data", group: "svc-fault")
            config.storageIO = io
            return config
        }
        let faulty = FaultInjectingStorageIO()
        faulty.arm(.init(.fdatasync, after: 1))  // batch 1 durable, batch 2 fails
        var failure: (any Error)?
        do {
            try Pipeline(config: makeConfig(faulty), logger: Logger(label: "test.fault")).run()
        } catch {
            failure = error
        }
        #expect(failure is PipelineError, "the pipeline must stop with an error")
        #expect("\(failure.map { "\($0)" } ?? "")".contains("ledger"))

        // What is durable, published and committed.
        var ledgerOffsets: [InputPartition: Int64] = [:]
        var lastSeq: [Int32: UInt64] = [:]
        do {
            let ledger = try LedgerStore.open(dataDirectory: dir + "/data")
            #expect(ledger.lastBatchNumber == 1)
            ledgerOffsets = ledger.nextOffsets
            for p in Int32(0)..<8 { lastSeq[p] = ledger.lastSequence(partition: p) }
        }
        let published = String(decoding: FileManager.default.contents(atPath: dir + "/data/published") ?? Data(), as: UTF8.self)
        #expect(published == "1\n")
        let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: broker.bootstrapServers, groupID: "svc-fault"))
        let tps = (Int32(0)..<8).map { KafkaTopicPartition(topic: "usage", partition: $0) }
        for (tp, offset) in try consumer.committed(tps) {
            guard let committed = offset.exactValue else { continue }
            let durable = ledgerOffsets[InputPartition(topic: tp.topic, partition: tp.partition)] ?? 0
            #expect(committed <= durable, "\(tp): committed \(committed) past the durable \(durable)")
        }
        try consumer.close()
        let changes = try RunSupport.drain(topic: "balance-changes", partitions: 32, bootstrap: broker.bootstrapServers)
        var beyond = 0
        for record in changes.values.joined() {
            guard let object = try JSONSerialization.jsonObject(with: Data(record.value)) as? [String: Any],
                let partition = object["partition"] as? Int, let seq = object["seq"] as? Int
            else { continue }
            if UInt64(seq) > lastSeq[Int32(partition)] ?? 0 { beyond += 1 }
        }
        #expect(beyond == 0, "\(beyond) balance changes of a batch that never became durable were published")

        // A restart on healthy storage finishes the stream: the same entries as drawdown process.
        try Pipeline(config: makeConfig(POSIXStorageIO()), logger: Logger(label: "test.fault")).run()
        let input = try RunSupport.drain(topic: "usage", partitions: 8, bootstrap: broker.bootstrapServers)
        let expected = RunSupport.expected(input, partitions: 8)
        let ledger = try RunSupport.ledgerEntries(dataDirectory: dir + "/data")
        for p in Int32(0)..<8 { #expect((ledger[p] ?? []) == (expected.entries[p] ?? []), "partition \(p)") }
    }
}
