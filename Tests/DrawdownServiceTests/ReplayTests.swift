import DrawdownCore
import DrawdownLedger
@testable import DrawdownService
import DrawdownTestSupport
import Foundation
import Testing

/// A data directory written in-process the way the committer writes one (inputs and entries
/// per partition section, positions, sequence ranges, event-time ranges, engine settings,
/// published marker, a snapshot every few batches), and each partition's stream as JSON lines
/// for `OfflineProcessor` (what `drawdown process` runs).
struct ReplayFixture {
    static let topic = "usage"
    /// The workload's prices with gpu.seconds, api.calls and the small model changed.
    static let newPrices = Workload.priceBookJSON
        .replacingOccurrences(of: #""unit_price": "0.0025""#, with: #""unit_price": "0.004""#)
        .replacingOccurrences(of: #""unit_price": "0.01", "currency": "usd""#, with: #""unit_price": "0.007", "currency": "usd""#)
        .replacingOccurrences(of: #""small": "0.0000005""#, with: #""small": "0.0000011""#)

    let directory: String
    let partitions: Int32
    var streams: [Int32: [UInt8]] = [:]
    var batches: [LedgerBatch] = []

    init(name: String, prices: String = Workload.priceBookJSON, partitions: Int32 = 3, messages: Int = 6_000,
         recordsPerBatch: Int = 200, snapshotEvery: Int = 7) throws {
        directory = RunSupport.temporaryDirectory(name)
        self.partitions = partitions
        let settings = try EngineSettings(priceBookJSON: Array(prices.utf8))
        let store = try LedgerStore.open(dataDirectory: directory)
        let snapshots = try SnapshotStore(dataDirectory: directory)
        var engines = (0..<partitions).map { PartitionEngine(partition: $0, config: settings.config) }
        var applier = RecordApplier(priceBook: settings.priceBook)
        var next = [Int64](repeating: 0, count: Int(partitions))
        var outputs: [OutputRecord] = []
        let records = Workload.records(WorkloadSpec(seed: 7, customers: 80, messages: messages))
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(start + recordsPerBatch, records.count)]
            start += chunk.count
            var sections: [Int32: PartitionSection] = [:]
            for (bytes, record) in chunk {
                let customer = record.message?.customer
                let p = customer.map { LedgerFixtureHash.partition(of: $0, partitions: partitions) } ?? 0
                streams[p, default: []].append(contentsOf: bytes + [0x0A])
                var section = sections[p] ?? PartitionSection(partition: p)
                let input = InputRecord(topic: Self.topic, offset: next[Int(p)], key: customer.map { Array($0.utf8) }, value: bytes)
                next[Int(p)] += 1
                section.inputs.append(input)
                applier.apply(input, engine: &engines[Int(p)], entries: &section.entries, outputs: &outputs, wantOutputs: false)
                sections[p] = section
            }
            let ordered = sections.keys.sorted().map { sections[$0]! }
            let batch = LedgerBatch.entries(number: store.lastBatchNumber + 1, previousHash: store.lastHash, sections: ordered)
            let hash = try store.append(batch)
            batches.append(batch)
            if Int(batch.number) % snapshotEvery == 0 {
                _ = try snapshots.write(EngineSnapshots.encode(engines), coversThroughBatch: batch.number, chainHash: hash)
            }
        }
        try settings.save(dataDirectory: directory, io: POSIXStorageIO())
        try DataDirectoryFiles.writePublished(store.lastBatchNumber, directory: directory, io: POSIXStorageIO())
    }

    func open() throws -> (ledger: LedgerStore, snapshots: SnapshotStore, settings: EngineSettings) {
        let ledger = try LedgerStore.open(dataDirectory: directory)
        return (ledger, try SnapshotStore(dataDirectory: directory), try EngineSettings.load(dataDirectory: directory)!)
    }

    /// `drawdown process` over each partition's stream with `prices`: the engines, and the
    /// charges (draws plus overage) per customer and currency.
    func process(prices: String) throws -> (engines: [PartitionEngine], charges: [ChargeKey: Credits]) {
        let book = try PriceBook.parse(Array(prices.utf8))
        var engines: [PartitionEngine] = []
        var charges: [ChargeKey: Credits] = [:]
        for p in 0..<partitions {
            var processor = OfflineProcessor(priceBook: book)
            processor.engine = PartitionEngine(partition: p)
            (streams[p] ?? []).withUnsafeBufferPointer { input in
                processor.run(input, output: { entries, _ in
                    for c in Charge.of(entries[...]) { charges[ChargeKey(customer: c.customer, currency: c.currency), default: .zero] += c.amount }
                }, rejected: { _ in })
            }
            engines.append(processor.engine)
        }
        return (engines, charges)
    }
}

/// The partition function of the CLI tests' `LedgerFixture` (any stable function will do).
enum LedgerFixtureHash {
    static func partition(of customer: String, partitions: Int32) -> Int32 {
        var h: UInt32 = 2_166_136_261
        for b in customer.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return Int32(h % UInt32(partitions))
    }
}

@Suite struct ReplayTests {
    @Test func replayingWithTheSamePricesFindsNoDifferenceAndWritesNothing() throws {
        let fixture = try ReplayFixture(name: "replay-same")
        defer { try? FileManager.default.removeItem(atPath: fixture.directory) }
        let (ledger, snapshots, settings) = try fixture.open()
        let last = ledger.lastBatchNumber
        for from: UInt64 in [1, 9, last / 2, last, last + 1] {
            let result = try Replay.run(
                ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: settings, fromBatch: from, throughBatch: .max)
            #expect(result.hasNoDifferences, "from \(from): \(result.table())")
            #expect(result.adjustments.isEmpty && result.correctionSections.isEmpty && result.unappliable.isEmpty)
            #expect(result.batchesReplayed == Int(last + 1 - from))
            let applied = try Replay.apply(
                result, ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: settings, publish: { _ in })
            #expect(applied == nil)
            #expect(ledger.lastBatchNumber == last)
        }
        // The same from a mid-range start with a snapshot in reach: it was used.
        let mid = try Replay.run(
            ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: settings, fromBatch: 15, throughBatch: .max)
        #expect(mid.snapshotBatch == 14)
    }

    @Test func reRatingReportsWhatProcessGivesAndApplyReachesProcessWithTheNewPrices() throws {
        let fixture = try ReplayFixture(name: "replay-rerate")
        defer { try? FileManager.default.removeItem(atPath: fixture.directory) }
        let old = try fixture.process(prices: Workload.priceBookJSON)
        let new = try fixture.process(prices: ReplayFixture.newPrices)
        let (ledger, snapshots, settings) = try fixture.open()
        let replaySettings = try EngineSettings(config: settings.config, priceBookJSON: Array(ReplayFixture.newPrices.utf8))
        let last = ledger.lastBatchNumber
        let result = try Replay.run(
            ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings, fromBatch: 1, throughBatch: .max)

        // The dry run's charges are those of `process` with each price book, pair by pair.
        #expect(!result.hasNoDifferences)
        #expect(result.unappliable.isEmpty, "\(result.unappliable)")
        let keys = Set(old.charges.keys).union(new.charges.keys)
        #expect(Set(result.rows.map { ChargeKey(customer: $0.customer, currency: $0.currency) }).isSuperset(of: keys))
        for row in result.rows {
            let key = ChargeKey(customer: row.customer, currency: row.currency)
            #expect(row.committed.charges == old.charges[key] ?? .zero, "\(key)")
            #expect(row.recomputed.charges == new.charges[key] ?? .zero, "\(key)")
            #expect(row.difference.charges == (new.charges[key] ?? .zero) - (old.charges[key] ?? .zero))
        }
        for total in result.totals {
            let want = new.charges.filter { $0.key.currency == total.currency }.values.reduce(Credits.zero, +)
                - old.charges.filter { $0.key.currency == total.currency }.values.reduce(Credits.zero, +)
            #expect(total.difference.charges == want, "\(total.currency)")
        }
        #expect(result.eventsChanged > 0 && result.eventsChangedMost.count == 20)
        let magnitudes = result.eventsChangedMost.map { $0.difference.isNegative ? Credits.zero - $0.difference : $0.difference }
        #expect(magnitudes == magnitudes.sorted(by: >))

        // Apply: one correction batch; the state is `process` with the new prices.
        var published: [OutputRecord] = []
        let applied = try #require(
            try Replay.apply(
                result, ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings,
                publish: { published += $0 }))
        #expect(applied.batch == last + 1 && ledger.lastBatchNumber == last + 1)
        #expect(applied.entries == result.adjustments.count && published.count == applied.outputs && !published.isEmpty)
        let cause = #""cause":{"type":"adjust","id":"\#(result.correctionID)"}"#
        #expect(published.allSatisfy { $0.kind == .balanceChange && String(decoding: $0.value, as: UTF8.self).contains(cause) })
        let want = StateDocument.render(new.engines)
        let saved = try #require(try EngineSettings.load(dataDirectory: fixture.directory))
        #expect(saved.priceBookJSON == replaySettings.priceBookJSON)
        // From scratch (the old book for the old batches, then the correction), and from the
        // snapshot the apply wrote.
        let scratch = try LedgerReplay.rebuild(ledger: ledger, snapshots: nil, settings: saved)
        #expect(String(decoding: StateDocument.render(scratch.engines), as: UTF8.self) == String(decoding: want, as: UTF8.self))
        let fromSnapshot = try LedgerReplay.rebuild(ledger: ledger, snapshots: snapshots, settings: saved)
        #expect(fromSnapshot.snapshotBatch == last + 1)
        #expect(StateDocument.render(fromSnapshot.engines) == want)
        // The outputs a restart would re-send for the correction batch are the ones published.
        let resent = try LedgerReplay.rebuild(ledger: ledger, snapshots: nil, settings: saved, outputsAfterBatch: last)
        #expect(resent.outputs.map(\.value) == published.map(\.value))
        // The adjust entries are in the ledger's entry listing.
        var adjusts = 0
        try LedgerReplay.forEachEntry(in: ledger, fromBatch: last + 1) { _, _, e in adjusts += e.type == .adjust ? 1 : 0 }
        #expect(adjusts == applied.entries)

        // Again: nothing left to correct, nothing written.
        let again = try Replay.run(
            ledger: ledger, snapshots: snapshots, settings: saved, replaySettings: replaySettings, fromBatch: 1, throughBatch: .max)
        #expect(again.hasNoDifferences == false || again.adjustments.isEmpty)
        #expect(again.adjustments.isEmpty, "\(again.table())")
        #expect(try Replay.apply(again, ledger: ledger, snapshots: snapshots, settings: saved, replaySettings: replaySettings, publish: { _ in }) == nil)
        #expect(ledger.lastBatchNumber == last + 1)
    }

    @Test func offsetsBatchNumberAndTimestampNameTheSamePoint() throws {
        let fixture = try ReplayFixture(name: "replay-positions", prices: Workload.priceBookJSON)
        defer { try? FileManager.default.removeItem(atPath: fixture.directory) }
        let (ledger, snapshots, settings) = try fixture.open()
        let replaySettings = try EngineSettings(config: settings.config, priceBookJSON: Array(ReplayFixture.newPrices.utf8))
        // A point whose batch holds a later event than every batch before it (so a time names it).
        var runningMax = Int64.min
        var offsets: [InputPartition: Int64] = [:]
        var points: [(batch: UInt64, offsets: [InputPartition: Int64], time: Int64)] = []
        for batch in fixture.batches {
            if let t = batch.eventTime, t.maxNanos > runningMax, batch.number > 3, runningMax > Int64.min {
                points.append((batch.number, offsets, runningMax + 1))
            }
            runningMax = max(runningMax, batch.eventTime?.maxNanos ?? runningMax)
            for p in batch.positions { offsets[InputPartition(topic: p.topic, partition: p.partition)] = p.nextOffset }
        }
        try #require(points.count >= 2)
        for point in [points[0], points[points.count / 2]] {
            var time: [UInt8] = []
            EventTime(nanos: point.time, fractionDigits: 9).append(to: &time)
            let offsetText = point.offsets.keys.sorted().map { "\($0.partition):\(point.offsets[$0]!)" }.joined(separator: ",")
            let texts = ["batch:\(point.batch)", "\(point.batch)", offsetText, String(decoding: time, as: UTF8.self)]
            var reports: [[UInt8]] = []
            for text in texts {
                let position = try ReplayPosition.parse(text, defaultTopic: ReplayFixture.topic)
                #expect(try position.resolve(in: ledger) == point.batch, "\(text)")
                let result = try Replay.run(
                    ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings,
                    fromBatch: try position.resolve(in: ledger), throughBatch: .max)
                reports.append(result.reportJSON(mode: "dry-run", applied: nil))
            }
            #expect(Set(reports).count == 1)
        }
        // A point inside a batch rounds down to the batch's start; --to ends before its batch.
        let inside = points[0].offsets.mapValues { $0 + 1 }
        #expect(try ReplayPosition.offsets(inside).resolve(in: ledger) == points[0].batch)
        #expect(try ReplayPosition.beginning.resolve(in: ledger) == 1)
        #expect(try ReplayPosition.end.resolve(in: ledger) == ledger.lastBatchNumber + 1)
        #expect(throws: ReplayError.self) { try ReplayPosition.parse("0:x", defaultTopic: "usage") }
        let partial = try Replay.run(
            ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings, fromBatch: 1,
            throughBatch: points[0].batch - 1)
        #expect(partial.throughBatch == points[0].batch - 1 && !partial.unappliable.isEmpty)
        #expect(throws: ReplayError.self) {
            try Replay.apply(partial, ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings, publish: { _ in })
        }
    }

    @Test func correctionRecordsRoundTrip() throws {
        let record = CorrectionRecord(
            id: "r1-9-00ff", batch: 10, fromBatch: 1, throughBatch: 9, pricesBefore: Array("{}".utf8), pricesAfter: nil)
        #expect(try CorrectionRecord.decode(record.encode(), path: "x") == record)
        let both = CorrectionRecord(id: "a", batch: 3, fromBatch: 2, throughBatch: 2, pricesBefore: [1, 2], pricesAfter: [3])
        #expect(try CorrectionRecord.decode(both.encode(), path: "x") == both)
        #expect(throws: ReplayError.self) { try CorrectionRecord.decode(Array(both.encode().dropLast()), path: "x") }
    }
}
