import DrawdownCore
import DrawdownTestSupport
import Foundation
import Testing

/// Snapshot at any message boundary, restore, continue: the ledger and state must equal an
/// uninterrupted run, byte for byte.
@Suite struct SnapshotTests {
    func lines() throws -> [[UInt8]] {
        try WorkedExample.file("mixed.jsonl").split(separator: UInt8(ascii: "\n")).map(Array.init)
            .filter { !$0.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }
    }

    func apply(_ lines: ArraySlice<[UInt8]>, to engine: inout PartitionEngine, decoder: inout MessageDecoder, output: inout [UInt8]) {
        for line in lines {
            let result = line.withUnsafeBufferPointer { decoder.decode($0) }
            switch result {
            case .success(let message): _ = engine.apply(message)
            case .failure: engine.countRejected()
            }
            let (entries, alerts) = engine.takeOutput()
            for entry in entries { entry.appendJSON(to: &output) }
            for alert in alerts { alert.appendJSON(to: &output) }
        }
    }

    @Test(arguments: [0, 1, 500, 1733, 3000])
    func restoreAnywhereGivesTheUninterruptedResult(cut: Int) throws {
        let book = try PriceBook.parse(Array(WorkedExample.file("prices.json")))
        let all = try lines()
        var decoder = MessageDecoder(priceBook: book)
        var whole = PartitionEngine(partition: 3)
        var expected: [UInt8] = []
        apply(all[...], to: &whole, decoder: &decoder, output: &expected)

        var first = PartitionEngine(partition: 3)
        var actual: [UInt8] = []
        apply(all[..<cut], to: &first, decoder: &decoder, output: &actual)
        let bytes = first.snapshot()
        var restored = try PartitionEngine(snapshot: bytes, config: EngineConfig())
        let stable = restored.snapshot() == bytes
        #expect(stable, "snapshot → restore → snapshot must be stable")
        apply(all[cut...], to: &restored, decoder: &decoder, output: &actual)

        #expect(actual == expected, "ledger and alerts after restoring at \(cut)")
        #expect(StateDocument.render([restored]) == StateDocument.render([whole]), "state after restoring at \(cut)")
        let same = restored.snapshot() == whole.snapshot()
        #expect(same, "the final engine state must encode identically")
    }

    @Test func damagedSnapshotsAreRefusedNotMisread() throws {
        let book = try PriceBook.parse(Array(WorkedExample.file("prices.json")))
        var decoder = MessageDecoder(priceBook: book)
        var engine = PartitionEngine()
        var sink: [UInt8] = []
        apply(try lines()[..<400], to: &engine, decoder: &decoder, output: &sink)
        let bytes = engine.snapshot()
        #expect(throws: BinaryReader.Damaged.self) { try PartitionEngine(snapshot: Array(bytes.dropLast(3))) }
        #expect(throws: BinaryReader.Damaged.self) { try PartitionEngine(snapshot: bytes + [0]) }
        let set = EngineSnapshots.encode([engine, PartitionEngine(partition: 1)])
        let decoded = try EngineSnapshots.decode(set, config: EngineConfig())
        #expect(decoded.map(\.partition) == [0, 1])
        #expect(decoded[0].snapshot() == bytes)
    }
}
