import DrawdownCore
import Testing

/// Decodes and applies messages, and shows entries compactly:
/// `"draw c1 credits g1 -2 8"` = type, customer, currency, grant (or -), amount, balance.
struct Harness {
    var decoder: MessageDecoder
    var engine: PartitionEngine

    init(prices: String? = nil, window: String = "24h", grace: String = "1h") {
        let book = prices.map { try! PriceBook.parse(Array($0.utf8)) }
        decoder = MessageDecoder(priceBook: book)
        engine = PartitionEngine(
            config: EngineConfig(
                dedupeWindow: DurationParser.nanoseconds(window)!, expiryGrace: DurationParser.nanoseconds(grace)!))
    }

    @discardableResult
    mutating func send(_ json: String) -> Outcome {
        switch decoder.decode(json) {
        case .success(let message): return engine.apply(message)
        case .failure(let rejection):
            engine.countRejected()
            return .rejected(rejection)
        }
    }

    mutating func take() -> [String] {
        engine.takeOutput().entries.map {
            "\($0.type.rawValue) \($0.customer) \($0.currency) \($0.grant ?? "-") \($0.amount) \($0.balance)"
        }
    }

    mutating func alerts() -> [String] {
        engine.takeOutput().alerts.map { "\($0.kind.rawValue) \($0.customer) \($0.available)\($0.level.map { " level \($0)" } ?? "")" }
    }
}

/// `minute` minutes after 2026-11-24T00:00:00Z, as RFC 3339 text.
func at(_ minute: Int, seconds: Int = 0) -> String {
    EventTime(nanos: (1_795_478_400 + Int64(minute) * 60 + Int64(seconds)) * 1_000_000_000).description
}

func grant(_ id: String, _ customer: String = "c1", at minute: Int = 0, amount: String, extra: String = "") -> String {
    #"{"type":"grant","id":"\#(id)","customer":"\#(customer)","timestamp":"\#(at(minute))","amount":"\#(amount)"\#(extra)}"#
}

func usage(_ id: String, _ customer: String = "c1", at minute: Int, cost: String, extra: String = "") -> String {
    #"{"id":"\#(id)","customer":"\#(customer)","timestamp":"\#(at(minute))","cost":"\#(cost)"\#(extra)}"#
}

@Suite struct DrawOrderTests {
    @Test func lowerPriorityNumberIsDrawnFirst() {
        var h = Harness()
        h.send(grant("g1", amount: "10", extra: #","priority":10"#))
        h.send(grant("g2", amount: "10", extra: #","priority":5"#))
        _ = h.take()
        h.send(usage("e1", at: 1, cost: "12"))
        #expect(h.take() == ["draw c1 credits g2 -10 10", "draw c1 credits g1 -2 8"])
    }

    @Test func samePriorityEarlierExpiryFirstAndNoExpiryLast() {
        var h = Harness()
        h.send(grant("none", amount: "1"))
        h.send(grant("late", amount: "1", extra: #","expires_at":"\#(at(600))""#))
        h.send(grant("soon", amount: "1", extra: #","expires_at":"\#(at(300))""#))
        _ = h.take()
        h.send(usage("e1", at: 1, cost: "3"))
        #expect(h.take() == ["draw c1 credits soon -1 2", "draw c1 credits late -1 1", "draw c1 credits none -1 0"])
    }

    @Test func thenEarlierEffectiveAtThenApplyOrder() {
        var h = Harness()
        h.send(grant("b", at: 10, amount: "1", extra: #","effective_at":"\#(at(5))""#))
        h.send(grant("a", at: 10, amount: "1", extra: #","effective_at":"\#(at(2))""#))
        h.send(grant("c", at: 10, amount: "1", extra: #","effective_at":"\#(at(5))""#))
        _ = h.take()
        h.send(usage("e1", at: 11, cost: "3"))
        #expect(h.take() == ["draw c1 credits a -1 2", "draw c1 credits b -1 1", "draw c1 credits c -1 0"])
    }

    @Test func aDrawSpansGrantsAndTheRestIsOverage() {
        var h = Harness()
        h.send(grant("g1", amount: "1.5"))
        h.send(grant("g2", amount: "2.25"))
        _ = h.take()
        h.send(usage("e1", at: 1, cost: "5"))
        #expect(h.take() == ["draw c1 credits g1 -1.5 2.25", "draw c1 credits g2 -2.25 0", "overage c1 credits - 1.25 0"])
        h.send(usage("e2", at: 2, cost: "0.75"))
        #expect(h.take() == ["overage c1 credits - 0.75 0"])
        let state = String(decoding: StateDocument.render([h.engine]), as: UTF8.self)
        #expect(state.contains(#""overage":"2""#))
        #expect(state.contains(#""g1":{"remaining":"0","status":"spent"}"#))
    }

    @Test func meterScopeLimitsWhatAGrantPaysFor() {
        var h = Harness(prices: #"{"meters":{"gpu":{"unit_price":"1"},"tokens":{"unit_price":"0.5"}}}"#)
        h.send(grant("gpu-only", amount: "10", extra: #","meters":["gpu"]"#))
        _ = h.take()
        h.send(#"{"id":"e1","customer":"c1","timestamp":"\#(at(1))","meter":"tokens","quantity":4}"#)
        #expect(h.take() == ["overage c1 credits - 2 10"])
        h.send(#"{"id":"e2","customer":"c1","timestamp":"\#(at(2))","meter":"gpu","quantity":"3"}"#)
        #expect(h.take() == ["draw c1 credits gpu-only -3 7"])
        // Pre-rated usage without a meter cannot use a scoped grant.
        h.send(usage("e3", at: 3, cost: "1"))
        #expect(h.take() == ["overage c1 credits - 1 7"])
    }

    @Test func currenciesNeverMix() {
        var h = Harness()
        h.send(grant("usd", amount: "10", extra: #","currency":"usd""#))
        h.send(grant("cr", amount: "1"))
        _ = h.take()
        h.send(usage("e1", at: 1, cost: "2", extra: #","currency":"usd""#))
        h.send(usage("e2", at: 2, cost: "2"))
        #expect(h.take() == ["draw c1 usd usd -2 8", "draw c1 credits cr -1 0", "overage c1 credits - 1 0"])
    }

    @Test func zeroCostWritesNothingButIsStillDeduplicated() {
        var h = Harness()
        h.send(grant("g1", amount: "1"))
        _ = h.take()
        #expect(h.send(usage("e1", at: 1, cost: "0")) == .applied)
        #expect(h.take().isEmpty)
        #expect(h.send(usage("e1", at: 1, cost: "0")) == .duplicate)
    }
}

@Suite struct RatingTests {
    @Test func priceByPropertyAndHalfEvenRounding() {
        let prices = #"{"meters":{"llm":{"unit_price":"0.000000002","by":"model","prices":{"large":"0.000000005"}}}}"#
        var h = Harness(prices: prices)
        h.send(grant("g", amount: "100"))
        _ = h.take()
        // 0.25 × 0.000000002 = 0.0000000005 → half to even → 0
        #expect(h.send(#"{"id":"e1","customer":"c1","timestamp":"\#(at(1))","meter":"llm","quantity":"0.25"}"#) == .applied)
        #expect(h.take().isEmpty)
        // 0.3 × 0.000000005 = 0.0000000015 → 0.000000002 (half to even)
        h.send(#"{"id":"e2","customer":"c1","timestamp":"\#(at(2))","meter":"llm","quantity":"0.3","properties":{"model":"large"}}"#)
        #expect(h.take() == ["draw c1 credits g -0.000000002 99.999999998"])
        // An unknown model, or a non-string property, falls back to unit_price.
        h.send(#"{"id":"e3","customer":"c1","timestamp":"\#(at(3))","meter":"llm","quantity":1000,"properties":{"model":"tiny"}}"#)
        h.send(#"{"id":"e4","customer":"c1","timestamp":"\#(at(4))","meter":"llm","quantity":1000,"properties":{"model":7}}"#)
        #expect(h.take() == ["draw c1 credits g -0.000002 99.999997998", "draw c1 credits g -0.000002 99.999995998"])
    }

    @Test func meterCurrencyIsTheDefault() {
        var h = Harness(prices: #"{"meters":{"api":{"unit_price":"0.01","currency":"usd"}}}"#)
        h.send(#"{"id":"e1","customer":"c1","timestamp":"\#(at(1))","meter":"api","quantity":3}"#)
        #expect(h.take() == ["overage c1 usd - 0.03 0"])
        #expect(h.send(#"{"id":"e2","customer":"c1","timestamp":"\#(at(2))","meter":"nope","quantity":3}"#).rejection == .unknownMeter)
    }
}

@Suite struct ActivationAndExpiryTests {
    @Test func pendingGrantCountsInNoBalanceUntilActivated() {
        var h = Harness()
        h.send(grant("later", at: 0, amount: "5", extra: #","effective_at":"\#(at(60))""#))
        #expect(h.take() == ["grant c1 credits later 5 0"])
        h.send(usage("e1", at: 30, cost: "1"))
        #expect(h.take() == ["overage c1 credits - 1 0"])
        h.send(usage("e2", at: 60, cost: "1"))
        #expect(h.take() == ["activate c1 credits later 0 5", "draw c1 credits later -1 4"])
        // A late event from before effective_at cannot draw from it.
        h.send(usage("e3", at: 59, cost: "1"))
        #expect(h.take() == ["overage c1 credits - 1 4"])
        let state = String(decoding: StateDocument.render([h.engine]), as: UTF8.self)
        #expect(state.contains(#""later":{"remaining":"4","status":"active"}"#))
    }

    @Test func expiresAtExactlyExpiresAtBeforeTheMessageIsApplied() {
        var h = Harness()
        h.send(grant("g", amount: "5", extra: #","expires_at":"\#(at(10))""#))
        _ = h.take()
        h.send(usage("e1", at: 9, cost: "1"))
        #expect(h.take() == ["draw c1 credits g -1 4"])
        h.send(usage("e2", at: 10, cost: "1"))
        #expect(h.take() == ["expire c1 credits g -4 0", "overage c1 credits - 1 0"])
        let expire = h.engine.entries
        #expect(expire.isEmpty)
    }

    @Test func expireEntryCarriesExpiresAtAndTheGrantAsSource() {
        var h = Harness()
        h.send(grant("g", amount: "5", extra: #","expires_at":"\#(at(10))""#))
        h.send(usage("e1", at: 11, cost: "1"))
        let entries = h.engine.takeOutput().entries
        #expect(entries[1].type == .expire)
        #expect(entries[1].source == "g")
        #expect(entries[1].timestamp.description == at(10))
        #expect(entries.map(\.seq) == [1, 2, 3])
    }

    @Test func idleCustomersExpireOnThePartitionWatermarkPlusGrace() {
        var h = Harness(grace: "1h")
        h.send(grant("g", "idle", at: 0, amount: "5", extra: #","expires_at":"\#(at(10))""#))
        _ = h.take()
        h.send(usage("x1", "busy", at: 69, cost: "1"))
        #expect(h.take() == ["overage busy credits - 1 0"])
        h.send(usage("x2", "busy", at: 70, cost: "1"))
        #expect(h.take() == ["expire idle credits g -5 0", "overage busy credits - 1 0"])
        // The idle customer's late event can no longer draw from it.
        h.send(usage("e1", "idle", at: 5, cost: "1"))
        #expect(h.take() == ["overage idle credits - 1 0"])
    }

    @Test func aGrantThatArrivesExpiredExpiresRightAfterItself() {
        var h = Harness()
        h.send(usage("e0", at: 100, cost: "0"))
        h.send(grant("old", at: 1, amount: "3", extra: #","expires_at":"\#(at(50))""#))
        #expect(h.take() == ["grant c1 credits old 3 3", "expire c1 credits old -3 0"])
        let state = String(decoding: StateDocument.render([h.engine]), as: UTF8.self)
        #expect(state.contains(#""old":{"remaining":"0","status":"expired"}"#))
    }

    @Test func expiriesAtOnePointGoInExpiresAtOrderThenApplyOrder() {
        var h = Harness()
        h.send(grant("b", amount: "1", extra: #","expires_at":"\#(at(20))""#))
        h.send(grant("a", amount: "1", extra: #","expires_at":"\#(at(10))""#))
        h.send(grant("c", amount: "1", extra: #","expires_at":"\#(at(20))""#))
        _ = h.take()
        h.send(usage("e", at: 30, cost: "0"))
        #expect(h.take() == ["expire c1 credits a -1 2", "expire c1 credits b -1 1", "expire c1 credits c -1 0"])
    }

    @Test func expiredOrVoidedPendingGrantsAreNeverActivated() {
        var h = Harness()
        h.send(grant("p", at: 0, amount: "2", extra: #","effective_at":"\#(at(10))","expires_at":"\#(at(20))""#))
        _ = h.take()
        h.send(usage("e", at: 25, cost: "0"))
        #expect(h.take() == ["expire c1 credits p -2 0"])
    }
}

@Suite struct VoidTests {
    @Test func voidRemovesTheRemainderOnce() {
        var h = Harness()
        h.send(grant("g", amount: "5"))
        h.send(usage("e1", at: 1, cost: "2"))
        _ = h.take()
        let void = #"{"type":"void","id":"v1","customer":"c1","timestamp":"\#(at(2))","grant":"g"}"#
        #expect(h.send(void) == .applied)
        #expect(h.take() == ["void c1 credits g -3 0"])
        #expect(h.send(#"{"type":"void","id":"v2","customer":"c1","timestamp":"\#(at(3))","grant":"g"}"#) == .applied)
        #expect(h.take().isEmpty)
        #expect(h.send(#"{"type":"void","id":"v3","customer":"c1","timestamp":"\#(at(3))","grant":"nope"}"#).rejection == .unknownGrant)
        // Another customer's grant is unknown too.
        #expect(h.send(#"{"type":"void","id":"v4","customer":"c2","timestamp":"\#(at(3))","grant":"g"}"#).rejection == .unknownGrant)
        let state = String(decoding: StateDocument.render([h.engine]), as: UTF8.self)
        #expect(state.contains(#""g":{"remaining":"0","status":"voided"}"#))
    }
}

@Suite struct DedupeTests {
    @Test func insideTheWindowAResendIsADuplicate() {
        var h = Harness(window: "1h")
        h.send(grant("g", amount: "10"))
        h.send(usage("e1", at: 1, cost: "1"))
        _ = h.take()
        #expect(h.send(usage("e1", at: 1, cost: "1")) == .duplicate)
        // Whitespace, field order and null optional fields do not count.
        #expect(h.send(#" { "cost" : "1", "timestamp":"\#(at(1))", "customer":"c1","id":"e1", "currency": null } "#) == .duplicate)
        // Numbers compare by value; a string compares by its text.
        h.send(#"{"id":"n1","customer":"c1","timestamp":"\#(at(1))","cost":1.50}"#)
        #expect(h.send(#"{"id":"n1","customer":"c1","timestamp":"\#(at(1))","cost":15e-1}"#) == .duplicate)
        #expect(h.send(#"{"id":"n1","customer":"c1","timestamp":"\#(at(1))","cost":"1.5"}"#) == .conflict)
        _ = h.take()
        #expect(h.take().isEmpty)
        #expect(h.engine.duplicates == 4)
    }

    @Test func sameIdDifferentContentIsAConflict() {
        var h = Harness()
        h.send(usage("e1", at: 1, cost: "1"))
        _ = h.take()
        #expect(h.send(usage("e1", at: 1, cost: "2")) == .conflict)
        #expect(h.take().isEmpty)
        // A grant resent with other fields is a duplicate (and a conflict), never a second grant.
        h.send(grant("g", at: 2, amount: "1"))
        #expect(h.send(grant("g", at: 2, amount: "9")) == .conflict)
    }

    @Test func outsideTheWindowTheSameIdIsNew() {
        var h = Harness(window: "1h")
        h.send(usage("e1", at: 0, cost: "1"))
        h.send(usage("tick", at: 61, cost: "0"))
        _ = h.take()
        // The key's timestamp left the window: a new message with the same id is applied.
        #expect(h.send(usage("e1", at: 61, cost: "1")) == .applied)
        #expect(h.take() == ["overage c1 credits - 1 0"])
    }

    @Test func tooLateFailsClosedEvenForAnExactResend() {
        var h = Harness(window: "1h")
        h.send(usage("e1", at: 0, cost: "1"))
        h.send(usage("tick", at: 61, cost: "0"))
        _ = h.take()
        #expect(h.send(usage("e1", at: 0, cost: "1")).rejection == .tooLate)
        #expect(h.send(usage("new", at: 0, cost: "1")).rejection == .tooLate)
        // Exactly at the window edge is still in.
        #expect(h.send(usage("edge", at: 1, cost: "1")) == .applied)
        #expect(h.take() == ["overage c1 credits - 1 0"])
    }

    @Test func rejectedMessagesClaimNoKeyAndMoveNoWatermark() {
        var h = Harness()
        h.send(grant("g", amount: "5", extra: #","expires_at":"\#(at(10))""#))
        _ = h.take()
        #expect(h.send(#"{"id":"e1","customer":"c1","timestamp":"\#(at(20))","cost":"1.0000000001"}"#).rejection == .precision)
        #expect(h.take().isEmpty)  // no expiry: the watermark did not move
        #expect(h.send(usage("e1", at: 5, cost: "1")) == .applied)
        #expect(h.take() == ["draw c1 credits g -1 4"])
    }
}

@Suite struct ThresholdTests {
    @Test func alertsOnCrossingDownAndReArmsAbove() {
        var h = Harness()
        h.send(grant("g", amount: "10"))
        h.send(#"{"type":"threshold","id":"t","customer":"c1","timestamp":"\#(at(0))","levels":["5", 2]}"#)
        _ = h.alerts()
        h.send(usage("e1", at: 1, cost: "4"))  // 6
        #expect(h.alerts().isEmpty)
        h.send(usage("e2", at: 2, cost: "1"))  // 5: at the level counts
        #expect(h.alerts() == ["balance_low c1 5 level 5"])
        h.send(usage("e3", at: 3, cost: "1"))  // 4: still below, no repeat
        #expect(h.alerts().isEmpty)
        h.send(grant("g2", at: 4, amount: "10"))  // 14: re-armed
        #expect(h.alerts().isEmpty)
        h.send(usage("e4", at: 5, cost: "13"))  // 1: crosses both
        #expect(h.alerts() == ["balance_low c1 1 level 5", "balance_low c1 1 level 2"])
        h.send(usage("e5", at: 6, cost: "2"))  // 0 and overage
        #expect(h.alerts() == ["balance_exhausted c1 0"])
        h.send(usage("e6", at: 7, cost: "2"))
        #expect(h.alerts().isEmpty)
    }

    @Test func expiryRaisesGrantExpired() {
        var h = Harness()
        h.send(grant("g", amount: "3", extra: #","expires_at":"\#(at(5))""#))
        _ = h.alerts()
        h.send(usage("e", at: 6, cost: "0"))
        #expect(h.alerts() == ["grant_expired c1 0"])
    }
}

extension Outcome {
    var rejection: RejectReason? {
        if case .rejected(let r) = self { return r.reason }
        return nil
    }
}
