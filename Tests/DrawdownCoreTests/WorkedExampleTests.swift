import DrawdownCore
import DrawdownTestSupport
import Foundation
import Testing

/// `shared/examples/mixed.jsonl` applied as one partition with the defaults must give
/// exactly `mixed.ledger.jsonl` and `mixed.state.json`.
@Suite struct WorkedExampleTests {
    @Test func ledgerAndStateMatchTheExampleExactly() throws {
        let priceBook = try PriceBook.parse(Array(WorkedExample.file("prices.json")))
        var processor = OfflineProcessor(priceBook: priceBook)
        var ledger: [UInt8] = []
        let input = Array(try WorkedExample.file("mixed.jsonl"))
        var rejectedLines = 0
        input.withUnsafeBufferPointer { buffer in
            processor.run(buffer) { entries, _ in
                for entry in entries {
                    entry.appendJSON(to: &ledger)
                    ledger.append(0x0A)
                }
            } rejected: { _ in rejectedLines += 1 }
        }
        let expected = try LedgerComparison.jsonLines(WorkedExample.file("mixed.ledger.jsonl")).map(LedgerComparison.normalized)
        let actual = try LedgerComparison.jsonLines(Data(ledger)).map(LedgerComparison.normalized)
        #expect(actual.count == expected.count)
        for (index, (got, want)) in zip(actual, expected).enumerated() where got != want {
            Issue.record("entry \(index + 1) differs:\n got  \(got)\n want \(want)")
            break
        }
        let state = try LedgerComparison.normalizedState(Data(StateDocument.render([processor.engine])))
        let expectedState = try LedgerComparison.normalizedState(WorkedExample.file("mixed.state.json"))
        #expect(state == expectedState)
        // Every reject and conflict was reported: rejected (176) + conflicting resends.
        #expect(rejectedLines >= 176)
    }

    @Test func theSameStreamTwiceGivesByteIdenticalLedgers() throws {
        let priceBook = try PriceBook.parse(Array(WorkedExample.file("prices.json")))
        let input = Array(try WorkedExample.file("mixed.jsonl"))
        func run() -> [UInt8] {
            var processor = OfflineProcessor(priceBook: priceBook)
            var out: [UInt8] = []
            input.withUnsafeBufferPointer { buffer in
                processor.run(buffer) { entries, alerts in
                    for entry in entries { entry.appendJSON(to: &out) }
                    for alert in alerts { alert.appendJSON(to: &out) }
                } rejected: { _ in }
            }
            return out + StateDocument.render([processor.engine])
        }
        #expect(run() == run())
    }
}
