@testable import DrawdownCore
import Testing

/// The engine keeps each customer's currencies and grant lists as chains through flat arrays
/// (`CustomerRecord`, `CurrencyRecord.next`, `GrantRecord.nextPending`/
/// `previousOfCustomer`). These tests hold the chains, after every message and across
/// snapshot restores, to what the per-customer arrays they replaced would hold, built here
/// from the messages and the grants' own fields.
@Suite struct FlatStateTests {
    /// What one customer's arrays held: currencies in the order they appeared, and its grants
    /// in apply order.
    struct Reference {
        var currencies: [String] = []
        var grants: [Int32] = []
    }

    /// The draw order, pending list and next expiry/activation the old arrays had, from the
    /// grant records' statuses and terms (SPEC §3.4 for the order).
    static func check(_ engine: PartitionEngine, _ references: [String: Reference], step: Int) {
        for (id, reference) in references {
            guard let c = engine.customerNumber(id).map(Int.init) else {
                Issue.record("customer \(id) missing at step \(step)")
                continue
            }
            let records = engine.currencyRecords(of: c)
            #expect(records.map { engine.currencies[Int($0)].currency } == reference.currencies, "currencies of \(id), step \(step)")
            #expect(engine.grantNumbers(of: c) == reference.grants, "grants of \(id), step \(step)")
            let grants = reference.grants.map { (number: $0, record: engine.grants[Int($0)]) }
            let live = grants.filter { !$0.record.status.isTerminal }.sorted {
                ($0.record.priority, $0.record.expiresAtNanos, $0.record.effectiveNanos, $0.number)
                    < ($1.record.priority, $1.record.expiresAtNanos, $1.record.effectiveNanos, $1.number)
            }
            #expect(engine.drawOrder(of: c) == live.map(\.number), "draw order of \(id), step \(step)")
            let pending = grants.filter { $0.record.status == .pending }
            #expect(engine.pendingGrants(of: c) == pending.map(\.number), "pending of \(id), step \(step)")
            #expect(engine.customers[c].nextExpiry == live.map(\.record.expiresAtNanos).min() ?? Int64.max, "step \(step)")
            #expect(engine.customers[c].nextActivation == pending.map(\.record.effectiveNanos).min() ?? Int64.max, "step \(step)")
            for (number, record) in grants {
                #expect(record.customer == Int32(c))
                #expect(engine.currencies[Int(record.currency)].currency == record.terms.currency, "currency of grant \(number)")
                #expect(records.contains(record.currency), "grant \(number)'s currency record is its customer's")
            }
        }
    }

    /// Random grants (priorities, expiries, future `effective_at`, three currencies), usage,
    /// voids and thresholds for a few customers; a snapshot is restored every 400 messages and
    /// the run goes on from the restored engine.
    @Test(arguments: [UInt64(3), 11, 2026])
    func chainsMatchThePerCustomerArrays(seed: UInt64) throws {
        var random = SplitMix(state: seed)
        let customers = (0..<6).map { "cust-\($0)" }
        let currencyNames = ["credits", "usd", "eur"]
        let minute: Int64 = 60_000_000_000
        var engine = PartitionEngine(config: EngineConfig(dedupeWindow: 600 * minute, expiryGrace: 30 * minute))
        var references: [String: Reference] = [:]
        var grantIDs: [String: [String]] = [:]
        var appliedGrants: Int32 = 0
        var clock: Int64 = 1_700_000_000_000_000_000
        var sawPending = false, sawReorder = false
        for step in 0..<3_000 {
            clock += Int64(random.next(3)) * minute - minute / 2  // now and then a little back
            let customer = random.pick(customers)
            let currency = random.pick(currencyNames)
            let time = EventTime(nanos: clock)
            let id = "m\(step)"
            let body: Message.Body
            switch random.next(10) {
            case 0...3:
                let effective = random.next(4) == 0 ? clock + Int64(random.next(60)) * minute : clock - minute
                let expires: EventTime? = random.next(3) == 0 ? nil : EventTime(nanos: effective + Int64(1 + random.next(120)) * minute)
                body = .grant(
                    GrantTerms(
                        amount: Credits(units: 1 + random.next(20)), currency: currency, priority: random.next(4),
                        effectiveAt: EventTime(nanos: effective), expiresAt: expires))
            case 4...7:
                body = .usage(Usage(cost: Credits(units: random.next(8)), currency: currency, meter: "m"))
            case 8:
                let known = grantIDs[customer] ?? []
                body = .void(grant: known.isEmpty || random.next(5) == 0 ? "nope" : random.pick(known))
            default:
                body = .threshold(ThresholdLevels(currency: currency, levels: [Credits(units: 5), Credits(units: 1)]))
            }
            let outcome = engine.apply(Message(id: id, customer: customer, timestamp: time, contentHash: UInt64(step), body: body))
            _ = engine.takeOutput()
            if outcome == .applied {
                var reference = references[customer] ?? Reference()
                switch body {
                case .grant(let terms):
                    if !reference.currencies.contains(terms.currency) { reference.currencies.append(terms.currency) }
                    reference.grants.append(appliedGrants)
                    if engine.grants[Int(appliedGrants)].status == .pending { sawPending = true }
                    let order = engine.drawOrder(of: Int(engine.customerNumber(customer)!))
                    if order.contains(appliedGrants), order.last != appliedGrants { sawReorder = true }  // inserted, not appended
                    appliedGrants += 1
                    grantIDs[customer, default: []].append(id)
                case .usage(let usage):
                    if !reference.currencies.contains(usage.currency) { reference.currencies.append(usage.currency) }
                case .threshold(let levels):
                    if !reference.currencies.contains(levels.currency) { reference.currencies.append(levels.currency) }
                case .void:
                    break
                }
                references[customer] = reference
            }
            Self.check(engine, references, step: step)
            if step % 400 == 399 {
                let bytes = engine.snapshot()
                engine = try PartitionEngine(snapshot: bytes, config: engine.config)
                #expect(engine.snapshot() == bytes, "snapshot stable at step \(step)")
                Self.check(engine, references, step: step)
            }
        }
        // The run exercised what the chains must get right.
        #expect(sawPending && sawReorder)
        #expect(engine.grants.contains { $0.status == .voided } && engine.grants.contains { $0.status == .expired })
        #expect(references.values.contains { $0.currencies.count == 3 })
    }

    /// An overage adjustment in a currency new to the customer adds it at the end of its
    /// chain; one that would go below zero fails and adds nothing.
    @Test func adjustmentAddsACurrencyOnlyWhenItSucceeds() {
        var engine = PartitionEngine()
        let time = EventTime(nanos: 1_700_000_000_000_000_000)
        _ = engine.apply(
            Message(id: "g1", customer: "c", timestamp: time, contentHash: 1, body: .grant(GrantTerms(amount: Credits(units: 5), effectiveAt: time))))
        _ = engine.takeOutput()
        let before = engine.snapshot()
        let failed = engine.adjust(customer: "c", currency: "usd", grant: nil, amount: Credits(units: -1), source: "r", timestamp: time)
        #expect(throws: AdjustmentError.self) { try failed.get() }
        #expect(engine.entries.isEmpty)
        #expect(engine.snapshot() == before)
        #expect(engine.currencyRecords(of: 0).count == 1)
        let ok = engine.adjust(customer: "c", currency: "usd", grant: nil, amount: Credits(units: 2), source: "r", timestamp: time)
        #expect((try? ok.get()) != nil)
        #expect(engine.currencyRecords(of: 0).map { engine.currencies[Int($0)].currency } == ["credits", "usd"])
        #expect(engine.balances(customer: "c").map(\.overage) == [Credits(units: 0), Credits(units: 2)])
        _ = engine.takeOutput()
        #expect(engine.snapshot() != before)
    }
}
