import DrawdownCore
import DrawdownKafka
@testable import DrawdownService
import DrawdownTestSupport
import Testing

/// `RecordApplier.apply(run:…)` (decode a few records, warm the engine on them, apply them in
/// order: what the shards, recovery and replay use) must give exactly what applying each
/// record alone gives: the same entries per record, the same outputs in the same order
/// (byte for byte), reject counts, `lastAppliedCustomer` after every record, engine counters
/// and state.
@Suite struct GroupedApplyTests {
    struct Result: Equatable {
        /// Per record, in input order: the entries it wrote, its `lastAppliedCustomer`.
        var entries: [[LedgerEntry]] = []
        var customers: [String?] = []
        var outputs: [[UInt8]] = []
        var rejects: [Int] = []
        var lastCustomer: String?
        var counters: [[UInt64]] = []
        var snapshots: [[UInt8]] = []
    }

    /// Records of a generated workload spread over `partitions` partitions in short bursts
    /// (1…11 records), so runs are mostly shorter than a warm group and some longer; most with
    /// the customer as Kafka key, some without, a few with another customer's.
    static func records(seed: UInt64, partitions: Int32) -> [(partition: Int32, input: InputRecord)] {
        var spec = WorkloadSpec(seed: seed, customers: 40, messages: 5_000)
        spec.malformedPer10k = 300
        spec.exactResendPer10k = 600
        spec.conflictPer10k = 200
        spec.tooLatePer10k = 200
        spec.thresholdPer10k = 200
        spec.spanNanos = 5_000 * 60 * 1_000_000_000
        var random = SeededGenerator(seed: seed)
        var result: [(partition: Int32, input: InputRecord)] = []
        var partition: Int32 = 0
        var burst = 0
        for (n, (bytes, record)) in Workload.records(spec).enumerated() {
            if burst == 0 {
                partition = Int32.random(in: 0..<partitions, using: &random)
                burst = Int.random(in: 1...11, using: &random)
            }
            burst -= 1
            var key = record.message.map { Array($0.customer.utf8) }
            switch Int.random(in: 0..<20, using: &random) {
            case 0: key = nil
            case 1: key = Array("c-other".utf8)
            default: break
            }
            result.append((partition, InputRecord(topic: "usage", offset: Int64(n), key: key, value: bytes)))
        }
        return result
    }

    static func outputBytes(_ outputs: [OutputRecord]) -> [[UInt8]] {
        outputs.map { output in
            var bytes: [UInt8] = Array("\(output.kind)|".utf8)
            bytes += output.key ?? Array("nil".utf8)
            bytes += Array("|".utf8) + output.value
            for header in output.headers { bytes += Array("|\(header.name)=".utf8) + (header.value ?? []) }
            return bytes
        }
    }

    /// A short dedupe window and expiry grace: sweeps and expiries happen inside groups.
    static let config = EngineConfig(dedupeWindow: 3_600 * 1_000_000_000, expiryGrace: 60 * 1_000_000_000)

    static func finish(
        _ result: inout Result, _ outputs: [OutputRecord], _ applier: inout RecordApplier, _ engines: [Int32: PartitionEngine]
    ) {
        result.outputs = outputBytes(outputs)
        result.rejects = applier.takeRejectCounts().counts
        result.lastCustomer = applier.lastAppliedCustomer
        for p in engines.keys.sorted() {
            let engine = engines[p]!
            result.counters.append([engine.applied, engine.duplicates, engine.rejected, engine.lastSeq])
            result.snapshots.append(engine.snapshot())
        }
    }

    static func oneByOne(_ records: [(partition: Int32, input: InputRecord)]) -> Result {
        var applier = RecordApplier(priceBook: Workload.priceBook)
        applier.tracksCustomers = true
        var engines: [Int32: PartitionEngine] = [:]
        var outputs: [OutputRecord] = []
        var result = Result()
        for (partition, input) in records {
            var engine = engines.removeValue(forKey: partition) ?? PartitionEngine(partition: partition, config: config)
            var entries: [LedgerEntry] = []
            applier.apply(input, engine: &engine, entries: &entries, outputs: &outputs, wantOutputs: true)
            result.entries.append(entries)
            result.customers.append(applier.lastAppliedCustomer)
            engines[partition] = engine
        }
        finish(&result, outputs, &applier, engines)
        return result
    }

    /// Runs of consecutive records of one partition through `apply(run:…)`, as ledger records
    /// (`raw: false`, what recovery does) or borrowed bytes (`raw: true`, what the shards do).
    static func grouped(_ records: [(partition: Int32, input: InputRecord)], raw: Bool) -> Result {
        var applier = RecordApplier(priceBook: Workload.priceBook)
        applier.tracksCustomers = true
        var engines: [Int32: PartitionEngine] = [:]
        var outputs: [OutputRecord] = []
        var result = Result()
        // Every record's key and value in one buffer, borrowed for the whole loop (like a batch).
        var bytes: [UInt8] = []
        var ranges: [(key: Range<Int>?, value: Range<Int>)] = []
        for (_, input) in records {
            var key: Range<Int>?
            if let k = input.key {
                key = bytes.count..<(bytes.count + k.count)
                bytes += k
            }
            let value = bytes.count..<(bytes.count + input.value.count)
            bytes += input.value
            ranges.append((key, value))
        }
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < records.count {
                let partition = records[start].partition
                var end = start + 1
                while end < records.count, records[end].partition == partition { end += 1 }
                var engine = engines.removeValue(forKey: partition) ?? PartitionEngine(partition: partition, config: config)
                var entries: [LedgerEntry] = []
                var expected = 0
                let base = start
                applier.apply(
                    run: end - start,
                    input: { j in
                        let i = base + j
                        guard raw else { return .record(records[i].input) }
                        return .raw(
                            RawInput(
                                topic: records[i].input.topic, offset: records[i].input.offset,
                                key: ranges[i].key.map { UnsafeBufferPointer(rebasing: buffer[$0]) },
                                value: UnsafeBufferPointer(rebasing: buffer[ranges[i].value])))
                    }, engine: &engine, entries: &entries, outputs: &outputs, wantOutputs: true
                ) { index, customer, written in
                    #expect(index == expected)
                    expected += 1
                    result.entries.append(Array(written))
                    result.customers.append(customer)
                }
                #expect(expected == end - start)
                #expect(entries == result.entries[start..<end].flatMap { $0 })
                engines[partition] = engine
                start = end
            }
        }
        finish(&result, outputs, &applier, engines)
        return result
    }

    @Test(arguments: [UInt64(1), 5, 23])
    func groupedMatchesOneByOne(seed: UInt64) {
        let records = Self.records(seed: seed, partitions: 3)
        let one = Self.oneByOne(records)
        // The workload has what the grouped path must keep in order.
        #expect(one.rejects[RejectReason.allCases.firstIndex(of: .malformed)!] > 0)
        #expect(one.rejects[RejectReason.allCases.firstIndex(of: .conflict)!] > 0)
        #expect(one.rejects[RejectReason.allCases.firstIndex(of: .tooLate)!] > 0)
        #expect(one.counters.contains { $0[1] > 0 }, "duplicates")
        #expect(one.outputs.count > records.count / 2)
        for raw in [false, true] {
            let grouped = Self.grouped(records, raw: raw)
            #expect(grouped.entries.count == records.count)
            #expect(grouped.entries == one.entries, "entries, raw: \(raw)")
            #expect(grouped.customers == one.customers, "lastAppliedCustomer, raw: \(raw)")
            #expect(grouped.outputs == one.outputs, "outputs, raw: \(raw)")
            #expect(grouped.rejects == one.rejects, "reject counts, raw: \(raw)")
            #expect(grouped.lastCustomer == one.lastCustomer)
            #expect(grouped.counters == one.counters, "engine counters, raw: \(raw)")
            #expect(grouped.snapshots == one.snapshots, "engine state, raw: \(raw)")
        }
    }

    /// One partition only: runs as long as the whole input, so full warm groups.
    @Test func onePartitionMatchesOneByOne() {
        let records = Self.records(seed: 9, partitions: 1)
        let one = Self.oneByOne(records)
        for raw in [false, true] {
            #expect(Self.grouped(records, raw: raw) == one, "raw: \(raw)")
        }
    }
}
