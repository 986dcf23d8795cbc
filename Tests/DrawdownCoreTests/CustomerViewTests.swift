import DrawdownCore
import Testing

@Suite struct CustomerViewTests {
    @Test func viewShowsBalancesAndGrantTermsAndStatus() throws {
        var engine = PartitionEngine(partition: 3)
        let lines = [
            #"{"type":"grant","id":"g2","customer":"c1","amount":"10","priority":5,"timestamp":"2026-01-01T00:00:00Z","expires_at":"2026-02-01T00:00:00Z"}"#,
            #"{"type":"grant","id":"g1","customer":"c1","amount":"3","priority":1,"timestamp":"2026-01-01T00:00:00Z"}"#,
            #"{"type":"usage","id":"u1","customer":"c1","meter":"tokens","quantity":1,"cost":"4.5","timestamp":"2026-01-02T00:00:00Z"}"#,
        ]
        var decoder = MessageDecoder(priceBook: nil)
        for line in lines {
            let message = try decoder.decode(line).get()
            _ = engine.apply(message)
        }
        let view = try #require(engine.customerView("c1"))
        #expect(view.partition == 3)
        #expect(view.currencies.count == 1)
        let credits = view.currencies[0]
        #expect(credits.currency == "credits")
        #expect(credits.available == Credits(nanos: 8_500_000_000))
        #expect(credits.overage == .zero)
        #expect(credits.grants.map(\.id) == ["g1", "g2"])
        #expect(credits.grants[0].status == "spent")
        #expect(credits.grants[0].priority == 1)
        #expect(credits.grants[1].remaining == Credits(nanos: 8_500_000_000))
        #expect(credits.grants[1].expiresAt?.description == "2026-02-01T00:00:00Z")
        #expect(engine.customerView("nobody") == nil)
    }
}
