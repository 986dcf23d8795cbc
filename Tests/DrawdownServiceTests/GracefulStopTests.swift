import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import DrawdownService
import DrawdownTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// `Pipeline.requestStop()` in process, and what the pipeline keeps in `ProcessorStatus`.
@Suite(.serialized)
struct GracefulStopTests {
    static let partitions: Int32 = 8

    /// Holds the pipeline so its own `batchPublished` callback can stop it.
    final class PipelineBox: Sendable {
        let pipeline = Mutex<Pipeline?>(nil)
    }

    @Test("requestStop mid-run finishes the batch in hand durable and published; a restart continues with no loss and no double charge")
    func stopMidRunThenRestart() throws {
        let broker = try TestDevBroker(topics: ["usage:8"] + RunSupport.outputTopics)
        defer { broker.stop() }
        let dir = RunSupport.temporaryDirectory("graceful")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = WorkloadSpec(seed: 31, customers: 600, messages: 30_000)
        try RunSupport.produce(Workload.records(spec), topic: "usage", bootstrap: broker.bootstrapServers)

        let metrics = RecordingMetrics()
        func makeConfig(stopAtEnd: Bool, status: ProcessorStatus) -> PipelineConfig {
            var config = RunSupport.pipelineConfig(broker, dataDirectory: dir + "/data", group: "svc-graceful")
            config.stopAtEnd = stopAtEnd
            config.status = status
            config.metricsFactory = metrics
            return config
        }

        // First run: stop once batch 3 is published (the pipeline is mid-stream then).
        let status = ProcessorStatus()
        let box = PipelineBox()
        var config = makeConfig(stopAtEnd: false, status: status)
        config.batchPublished = { progress in
            if progress.batch >= 3 { box.pipeline.withLock { $0?.requestStop() } }
        }
        let pipeline = Pipeline(config: config, logger: Logger(label: "test.graceful"))
        box.pipeline.withLock { $0 = pipeline }
        let first = try pipeline.run()
        #expect(status.phase == .stopped)
        #expect(first.recordsApplied > 0)
        #expect(first.recordsApplied < spec.messages, "the stop came mid-stream (\(first.recordsApplied) records)")

        // Everything handed over is durable and published: a clean stop leaves nothing to re-send.
        do {
            let ledger = try LedgerStore.open(dataDirectory: dir + "/data")
            let lastBatch = ledger.lastBatchNumber
            let handed = ledger.nextOffsets.values.reduce(0) { $0 + Int($1) }
            #expect(handed == first.recordsApplied)
            let published = String(decoding: FileManager.default.contents(atPath: dir + "/data/published") ?? Data(), as: UTF8.self)
            #expect(published == "\(lastBatch)\n")
            #expect(status.lastDurableBatch == lastBatch)

            // The status holds every customer as the ledger's state has them.
            let rebuilt = try LedgerReplay.rebuild(ledger: ledger, snapshots: nil, settings: makeConfig(stopAtEnd: true, status: status).settings, outputsAfterBatch: .max)
            var customers = 0
            for engine in rebuilt.engines {
                for view in engine.allCustomerViews() {
                    customers += 1
                    let known = status.customer(view.customer)
                    #expect(known?.view == view, "customer \(view.customer): status differs from the ledger's state")
                    #expect(known.map { $0.partitionSeq <= engine.lastSeq } ?? false)
                }
            }
            #expect(customers > 0)
        }  // the ledger lock is released here

        // Second run (a new status, loaded by recovery) to the end.
        let second = ProcessorStatus()
        let rest = try Pipeline(config: makeConfig(stopAtEnd: true, status: second), logger: Logger(label: "test.graceful")).run()
        #expect(rest.republished == 0, "a clean stop leaves nothing unpublished")
        #expect(first.recordsApplied + rest.recordsApplied == spec.messages)
        #expect(second.phase == .stopped)
        #expect(second.assignedPartitions == Int(Self.partitions))

        let input = try RunSupport.drain(topic: "usage", partitions: Self.partitions, bootstrap: broker.bootstrapServers)
        let expected = RunSupport.expected(input, partitions: Self.partitions)
        let entries = try RunSupport.ledgerEntries(dataDirectory: dir + "/data")
        for p in 0..<Self.partitions {
            #expect((entries[p] ?? []) == (expected.entries[p] ?? []), "partition \(p): entries differ from drawdown process")
        }
        // The status after the restart: every customer as the whole ledger has them.
        let whole = try LedgerReplay.rebuild(
            ledger: LedgerStore.open(dataDirectory: dir + "/data"), settings: makeConfig(stopAtEnd: true, status: second).settings)
        for engine in whole.engines {
            for view in engine.allCustomerViews() {
                #expect(second.customer(view.customer)?.view == view, "customer \(view.customer) after the restart")
            }
        }
        try RunPipelineTests().checkBalanceChanges(broker, ledger: entries)

        // The metrics of both runs, by the names in MetricNames.
        let batches = first.batchesWritten + rest.batchesWritten
        #expect(metrics.total(MetricNames.recordsConsumed) == Int64(spec.messages))
        #expect(metrics.total(MetricNames.ledgerBatches) == Int64(batches))
        #expect(metrics.values(MetricNames.batchRecords).reduce(0, +) == Double(spec.messages))
        #expect(metrics.values(MetricNames.ledgerFsync).count == batches)
        #expect(metrics.total(MetricNames.ledgerBytes) > 0)
        #expect(metrics.total(MetricNames.rejected) == Int64(expected.rejectCount))
        for reason in Set(expected.rejects.values) {
            let count = expected.rejects.values.filter { $0 == reason }.count
            #expect(metrics.total(MetricNames.rejected, "reason=\(reason)") == Int64(count), "reason \(reason)")
        }
        #expect(metrics.total(MetricNames.recordsApplied) == Int64(expected.engines.reduce(0) { $0 + $1.applied }))
        #expect(metrics.total(MetricNames.duplicates) == Int64(expected.engines.reduce(0) { $0 + $1.duplicates }))
        #expect(metrics.total(MetricNames.outputsPublished) == Int64(first.outputsPublished + rest.outputsPublished))
        #expect(metrics.total(MetricNames.outputsPublished, "kind=balance_change") > 0)
        #expect(metrics.total(MetricNames.outputsPublished, "kind=dead_letter") == Int64(expected.rejectCount))
        #expect(metrics.values(MetricNames.recoverySeconds).count == 2)
        #expect(Set(metrics.dimensions(MetricNames.shardQueueDepth)) == [["shard=0"], ["shard=1"]])
        #expect(first.consumeToDurable.count == first.recordsApplied)
        #expect(first.consumeToDelivered.count == first.recordsApplied)
    }
}
