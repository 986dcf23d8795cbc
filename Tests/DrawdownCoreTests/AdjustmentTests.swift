import DrawdownCore
import Testing

@Suite struct AdjustmentTests {
    private func engineWithHistory() throws -> PartitionEngine {
        var engine = PartitionEngine(partition: 0)
        var decoder = MessageDecoder(priceBook: nil)
        for line in [
            #"{"type":"grant","id":"g1","customer":"c1","amount":"10","timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"id":"u1","customer":"c1","cost":"12","timestamp":"2026-01-02T00:00:00Z"}"#,
        ] {
            #expect(engine.apply(try decoder.decode(line).get()) == .applied)
        }
        _ = engine.takeOutput()
        return engine
    }

    @Test func grantAdjustmentRestoresCreditAndWritesOneEntry() throws {
        var engine = try engineWithHistory()
        let at = try #require(EventTime.parse("2026-01-03T00:00:00Z"))
        let seq = try engine.adjust(
            customer: "c1", currency: "credits", grant: "g1", amount: Credits(units: 4), source: "replay-1", timestamp: at
        ).get()
        #expect(seq == engine.lastSeq)
        let overage = try engine.adjust(
            customer: "c1", currency: "credits", grant: nil, amount: Credits(units: -2), source: "replay-1", timestamp: at
        ).get()
        #expect(overage == seq + 1)
        let view = try #require(engine.customerView("c1"))
        #expect(view.currencies[0].available == Credits(units: 4))
        #expect(view.currencies[0].overage == .zero)
        #expect(view.currencies[0].grants[0].remaining == Credits(units: 4))
        let entries = engine.takeOutput().entries
        #expect(entries.map(\.type) == [.adjust, .adjust])
        #expect(entries.map(\.balance) == [Credits(units: 4), Credits(units: 4)])
        #expect(entries[1].grant == nil)
        #expect(engine.applied == 2)
    }

    @Test func impossibleAdjustmentsChangeNothing() throws {
        var engine = try engineWithHistory()
        let before = engine.customerView("c1")
        let seq = engine.lastSeq
        let at = try #require(EventTime.parse("2026-01-03T00:00:00Z"))
        let attempts: [(String, String?, Int)] = [("c1", "g1", -1), ("c1", nil, -3), ("nobody", nil, 1), ("c1", "g9", 1)]
        for (customer, grant, units) in attempts {
            let result = engine.adjust(
                customer: customer, currency: "credits", grant: grant, amount: Credits(units: units), source: "r", timestamp: at)
            guard case .failure = result else {
                Issue.record("\(customer)/\(grant ?? "-")/\(units) was applied")
                continue
            }
        }
        #expect(engine.customerView("c1") == before)
        #expect(engine.lastSeq == seq)
        #expect(engine.entries.isEmpty)
    }
}
