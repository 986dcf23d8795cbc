import DrawdownCore
import Foundation
import Testing

/// Property tests over seeded random streams from `WorkloadGenerator` (SPEC §3 invariants).
///
/// Every failure names its seed. Replay one with
/// `DRAWDOWN_SEED=<seed> swift test --filter PropertyTests`.
@Suite(.serialized) struct PropertyTests {
    static let hour: Int64 = 3_600 * 1_000_000_000
    /// An expiry grace so large that the idle-customer sweep never fires.
    static let hugeGrace: Int64 = 100 * 365 * 24 * hour

    /// The seeds to run: `DRAWDOWN_SEED` alone when set, else a fixed list.
    static func seeds(_ count: Int) -> [UInt64] {
        if let text = ProcessInfo.processInfo.environment["DRAWDOWN_SEED"], let seed = UInt64(text) { return [seed] }
        return (1...UInt64(count)).map { ($0 &* 0x9E37_79B9_7F4A_7C15) >> 20 }
    }

    static func spec(seed: UInt64, customers: Int = 24, messages: Int = 3_000) -> WorkloadSpec {
        var spec = WorkloadSpec(seed: seed, customers: customers, messages: messages)
        spec.spanNanos = Int64(messages) * 90 * 1_000_000_000  // ~90 s between messages
        return spec
    }

    // MARK: (a, b) The engine against an independent reference model, entry for entry

    @Test(arguments: seeds(10))
    func engineMatchesReferenceModel(seed: UInt64) {
        let records = Workload.records(Self.spec(seed: seed))
        for grace in [EngineConfig.defaultExpiryGrace, Self.hugeGrace] {
            let config = EngineConfig(expiryGrace: grace)
            var decoder = MessageDecoder(priceBook: Workload.priceBook)
            var engine = PartitionEngine(config: config)
            var model = ReferenceModel(config: config)
            for (bytes, record) in records {
                let decoded = bytes.withUnsafeBufferPointer { decoder.decode($0) }
                let context = "seed \(seed) (replay: DRAWDOWN_SEED=\(seed)), grace \(grace), record \(record.index): \(String(decoding: bytes, as: UTF8.self))"
                guard let message = record.message, record.kind != .malformed else {
                    guard case .failure(let rejection) = decoded else {
                        Issue.record("malformed record was accepted — \(context)")
                        return
                    }
                    #expect(rejection.reason == record.expected, "\(rejection.detail) — \(context)")
                    engine.countRejected()
                    continue
                }
                guard case .success(let decodedMessage) = decoded else {
                    Issue.record("valid record was rejected: \(decoded) — \(context)")
                    return
                }
                // Rating, checked against the generator's own quantities and prices.
                if case .usage(let usage) = decodedMessage.body {
                    #expect(usage.cost == ReferenceModel.cost(message.usage!), "cost — \(context)")
                    #expect(usage.currency == message.usage!.currency, "currency — \(context)")
                }
                let outcome = engine.apply(decodedMessage)
                let got = engine.takeOutput().entries.map(ReferenceModel.entry)
                let (expectedOutcome, want) = model.apply(message)
                let eligibleBefore = model.eligibleAtDraw
                guard Self.name(outcome) == Self.name(expectedOutcome), got == want else {
                    Issue.record(
                        """
                        engine and reference model differ — \(context)
                         engine outcome \(outcome), entries:
                        \(got.map { "   \($0)" }.joined(separator: "\n"))
                         model outcome \(expectedOutcome), entries:
                        \(want.map { "   \($0)" }.joined(separator: "\n"))
                        """)
                    return
                }
                // (b) No draw from a grant while one ordered before it, eligible, still had credit.
                if message.type == .usage {
                    let draws = got.filter { $0.type == "draw" }
                    for draw in draws {
                        guard let position = eligibleBefore.firstIndex(where: { $0.id == draw.grant }) else {
                            Issue.record("draw from a grant that was not eligible: \(draw) — \(context)")
                            return
                        }
                        for earlier in eligibleBefore[..<position] {
                            let taken = -draws.filter { $0.grant == earlier.id }.reduce(Int128(0)) { $0 + $1.amount }
                            #expect(taken == earlier.remaining, "grant \(earlier.id) drawn before emptying — \(context)")
                        }
                    }
                }
            }
            // Final state agrees too.
            let state = StateSummary(StateDocument.render([engine]))
            #expect(state.grants == model.grantSummary, "final grants — seed \(seed), grace \(grace)")
            #expect(state.applied == model.applied, "applied — seed \(seed)")
            #expect(state.duplicates == model.duplicates, "duplicates — seed \(seed)")
        }
    }

    // MARK: The generator itself

    /// The streams above only prove something if they reach the interesting cases.
    @Test func generatedStreamsReachEveryCase() {
        let records = Workload.records(Self.spec(seed: Self.seeds(1)[0]))
        let run = StreamRun(records: records, config: EngineConfig())
        var outcomes: [String: Int] = [:]
        for outcome in run.outcomes { outcomes[outcome.map(Self.name) ?? "decoder"] = (outcomes[outcome.map(Self.name) ?? "decoder"] ?? 0) + 1 }
        var types: [EntryType: Int] = [:]
        for entry in run.entries { types[entry.type, default: 0] += 1 }
        for name in ["applied", "duplicate", "conflict", "too_late", "unknown_grant", "decoder"] {
            #expect(outcomes[name, default: 0] > 0, "no \(name) in \(outcomes)")
        }
        for type in [EntryType.grant, .draw, .overage, .expire, .void, .activate] {
            #expect(types[type, default: 0] > 0, "no \(type) entries in \(types)")
        }
        // Draws spanning several grants, and zero-cost usage.
        let multiDraw = run.perMessage.contains { range in run.entries[range].filter { $0.type == .draw }.count > 1 }
        #expect(multiDraw)
        #expect(records.contains { $0.record.message?.usage.map { ReferenceModel.cost($0).isZero } ?? false })
        let kinds = Set(records.map { "\($0.record.kind)" })
        #expect(kinds.count == 8, "\(kinds)")
    }

    @Test func workloadIsDeterministicAndSizedLikeTheIssueSays() {
        var spec = WorkloadSpec.benchmark(seed: 42, messages: 20_000, customers: 2_000)
        let a = Workload.jsonLines(spec)
        #expect(a == Workload.jsonLines(spec))
        spec.seed = 43
        #expect(a != Workload.jsonLines(spec))
        let records = Workload.records(WorkloadSpec.benchmark(seed: 42, messages: 20_000, customers: 2_000))
        let usage = records.filter { $0.record.kind == .usage }
        let average = usage.reduce(0) { $0 + $1.bytes.count } / max(1, usage.count)
        #expect((120...180).contains(average), "usage records average \(average) bytes")
        #expect(records.first.map { String(decoding: $0.bytes, as: UTF8.self).contains("2026-11-01T") } == true)
    }

    // MARK: (a, e) Conservation and balances, from the entries alone

    @Test(arguments: seeds(8))
    func conservationAndBalances(seed: UInt64) {
        let spec = Self.spec(seed: seed, customers: 150, messages: 6_000)
        let run = StreamRun(records: Workload.records(spec), config: EngineConfig())
        run.checkInvariants(context: "seed \(seed) (replay: DRAWDOWN_SEED=\(seed))")
    }

    @Test func conservationAndBalancesOnALargeStream() {
        let seed = Self.seeds(1)[0] &+ 7
        var spec = WorkloadSpec(seed: seed, customers: 2_000, messages: 100_000)
        spec.spanNanos = 100_000 * 20 * 1_000_000_000
        let run = StreamRun(records: Workload.records(spec), config: EngineConfig())
        run.checkInvariants(context: "seed \(seed) (replay: DRAWDOWN_SEED=\(seed &- 7)), 100k messages")
    }

    // MARK: (c) Every message sent twice

    @Test(arguments: seeds(6))
    func everyMessageSentTwiceGivesTheSameLedger(seed: UInt64) {
        let records = Workload.records(Self.spec(seed: seed))
        let once = StreamRun(records: records, config: EngineConfig())
        var random = WorkloadRandom(seed: seed ^ 0xD0D0)
        for variant in ["immediately", "later", "immediately and later"] {
            // Each copy is placed at a position key; stable sort keeps the stream order otherwise.
            var placed: [(key: Int, order: Int, record: (bytes: [UInt8], record: WorkloadRecord))] = []
            for (n, record) in records.enumerated() {
                placed.append((2 * n, placed.count, record))
                if variant != "later" { placed.append((2 * n, placed.count, record)) }
                if variant != "immediately" { placed.append((2 * (n + 1 + random.below(40)) + 1, placed.count, record)) }
            }
            placed.sort { ($0.key, $0.order) < ($1.key, $1.order) }
            let twice = StreamRun(records: placed.map(\.record), config: EngineConfig())
            let context = "seed \(seed) (replay: DRAWDOWN_SEED=\(seed)), sent \(variant)"
            #expect(twice.entries == once.entries, "ledger differs — \(context)")
            #expect(twice.alerts == once.alerts, "alerts differ — \(context)")
            let a = StateSummary(once.state), b = StateSummary(twice.state)
            #expect(a.grants == b.grants && a.balances == b.balances, "state differs — \(context)")
            #expect(a.applied == b.applied, "applied count differs — \(context)")
            #expect(b.duplicates > a.duplicates, "duplicates — \(context)")
        }
    }

    // MARK: (d) Partitions and batches

    @Test(arguments: seeds(6))
    func partitionsAndBatchesDoNotChangeTheLedger(seed: UInt64) {
        let records = Workload.records(Self.spec(seed: seed, customers: 40))
        let config = EngineConfig(expiryGrace: Self.hugeGrace)
        let whole = StreamRun(records: records, config: config)
        let wholeByCustomer = Self.byCustomer(whole.entries)
        var random = WorkloadRandom(seed: seed ^ 0xBA7C)
        for k in [1, 2, 3, 8] {
            var engines = (0..<k).map { PartitionEngine(partition: Int32($0), config: config) }
            var decoder = MessageDecoder(priceBook: Workload.priceBook)
            var entries: [LedgerEntry] = []
            var sinceTake = Array(repeating: 0, count: k)
            var batch = (0..<k).map { _ in 1 + random.below(200) }
            for (bytes, _) in records {
                let decoded = bytes.withUnsafeBufferPointer { decoder.decode($0) }
                guard case .success(let message) = decoded else {
                    engines[0].countRejected()
                    continue
                }
                let p = Int(Self.stableHash(message.customer) % UInt64(k))
                _ = engines[p].apply(message)
                sinceTake[p] += 1
                if sinceTake[p] >= batch[p] {
                    entries += engines[p].takeOutput().entries
                    sinceTake[p] = 0
                    batch[p] = 1 + random.below(200)
                }
            }
            for p in 0..<k { entries += engines[p].takeOutput().entries }
            let context = "seed \(seed) (replay: DRAWDOWN_SEED=\(seed)), \(k) partitions"
            let split = Self.byCustomer(entries)
            #expect(split.keys.sorted() == wholeByCustomer.keys.sorted(), "customers — \(context)")
            for (customer, list) in wholeByCustomer where split[customer] != list {
                Issue.record("customer \(customer) differs — \(context)")
                break
            }
            #expect(StateDocument.render(engines) == whole.state, "state document — \(context)")
        }
    }

    static func name(_ outcome: Outcome) -> String {
        switch outcome {
        case .applied: "applied"
        case .duplicate: "duplicate"
        case .conflict: "conflict"
        case .rejected(let rejection): rejection.reason.rawValue
        }
    }

    /// Entries per customer, without `seq` (which is per partition).
    static func byCustomer(_ entries: [LedgerEntry]) -> [String: [LedgerEntry]] {
        var result: [String: [LedgerEntry]] = [:]
        for var entry in entries {
            entry.seq = 0
            result[entry.customer, default: []].append(entry)
        }
        return result
    }

    /// FNV-1a over the customer's bytes: stable across processes, independent of the engine.
    static func stableHash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}

// MARK: - A stream through the engine

/// One stream applied to one partition, with the entries each message wrote.
struct StreamRun {
    var records: [(bytes: [UInt8], record: WorkloadRecord)]
    var entries: [LedgerEntry] = []
    var alerts: [Alert] = []
    /// Per record: the engine's outcome (nil when the decoder rejected it) and its entries.
    var outcomes: [Outcome?] = []
    var perMessage: [Range<Int>] = []
    var state: [UInt8] = []

    init(records: [(bytes: [UInt8], record: WorkloadRecord)], config: EngineConfig) {
        self.records = records
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var engine = PartitionEngine(config: config)
        for (bytes, _) in records {
            let start = entries.count
            switch bytes.withUnsafeBufferPointer({ decoder.decode($0) }) {
            case .failure:
                engine.countRejected()
                outcomes.append(nil)
            case .success(let message):
                outcomes.append(engine.apply(message))
                let output = engine.takeOutput()
                entries += output.entries
                alerts += output.alerts
            }
            perMessage.append(start..<entries.count)
        }
        state = StateDocument.render([engine])
    }

    /// SPEC §3 invariants: conservation per grant and per usage event, and every entry's
    /// balance equal to the sum of the counted grants' remaining amounts.
    func checkInvariants(context: String) {
        let summary = StateSummary(state)
        // Grant terms as the generator wrote them, by (customer, grant id).
        var terms: [String: WorkloadGrant] = [:]
        for (_, record) in records where record.kind == .grant {
            let message = record.message!
            terms[message.customer + "\u{0}" + message.id] = message.grant!
        }
        var remaining: [String: Int128] = [:]
        var counted: Set<String> = []
        var grantCurrency: [String: String] = [:]
        var grantsOf: [String: [String]] = [:]
        var watermark: [String: Int64] = [:]
        var failures = 0
        func fail(_ text: String) {
            failures += 1
            if failures <= 5 { Issue.record("\(text) — \(context)") }
        }
        for (n, (bytes, record)) in records.enumerated() {
            guard let outcome = outcomes[n] else { continue }
            guard outcome == .applied, let message = record.message else { continue }
            watermark[message.customer] = max(watermark[message.customer] ?? Int64.min, message.timestamp)
            let written = entries[perMessage[n]]
            // Conservation per usage event: draws + overage = cost, computed from the generator's numbers.
            if let usage = message.usage {
                let charged = written.filter { ($0.type == .draw || $0.type == .overage) && $0.source == message.id }
                let total = charged.reduce(Int128(0)) { $0 + ($1.type == .draw ? -$1.amount.nanos : $1.amount.nanos) }
                let cost = ReferenceModel.cost(usage)
                if total != cost.nanos {
                    fail("usage \(message.id) charged \(total) nanos, cost \(cost.nanos): \(String(decoding: bytes, as: UTF8.self))")
                }
                if charged.contains(where: { $0.currency != usage.currency }) { fail("usage \(message.id) charged in another currency") }
            }
            for entry in written {
                let key = entry.customer + "\u{0}" + (entry.grant ?? "")
                switch entry.type {
                case .grant:
                    guard let grant = terms[key] else {
                        fail("grant entry for an unknown grant \(key)")
                        continue
                    }
                    remaining[key] = entry.amount.nanos
                    grantCurrency[key] = entry.currency
                    grantsOf[entry.customer, default: []].append(key)
                    if grant.effectiveAt <= watermark[entry.customer, default: Int64.min] { counted.insert(key) }
                    if entry.amount != grant.amount { fail("grant \(key) amount \(entry.amount), generated \(grant.amount)") }
                case .activate:
                    if counted.contains(key) { fail("grant \(key) activated twice or while effective") }
                    counted.insert(key)
                    if entry.amount != .zero { fail("activate entry with an amount") }
                case .draw, .expire, .void:
                    guard entry.amount.isNegative, let left = remaining[key] else {
                        fail("\(entry.type) entry \(entry.seq) of grant \(key) is not negative or names no known grant")
                        continue
                    }
                    remaining[key] = left + entry.amount.nanos
                    if left + entry.amount.nanos < 0 { fail("grant \(key) went below zero at entry \(entry.seq)") }
                    if entry.type == .draw, !counted.contains(key) { fail("draw from an uncounted grant \(key)") }
                    if entry.type != .draw { counted.remove(key) }
                    if entry.type != .draw, left + entry.amount.nanos != 0 { fail("\(entry.type) of \(key) left a remainder") }
                case .overage:
                    if !entry.amount.isPositive { fail("overage entry \(entry.seq) is not positive") }
                case .adjust:
                    fail("adjust entry from a plain run")
                }
                // (e) The balance is the sum of the counted grants' remaining amounts in that currency.
                let sum = grantsOf[entry.customer, default: []].reduce(Int128(0)) { total, key in
                    counted.contains(key) && grantCurrency[key] == entry.currency ? total + remaining[key]! : total
                }
                if sum != entry.balance.nanos {
                    fail("entry \(entry.seq) (\(entry.type) \(entry.customer) \(entry.currency)) balance \(entry.balance), grants sum to \(sum)")
                }
            }
        }
        // (a) Per grant: amount − draws − expired − voided = remaining in the state document, ≥ 0.
        for (key, left) in remaining {
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            let stated = summary.grants[String(parts[0])]?[String(parts[1])]?.remaining
            if stated != left { fail("grant \(key): entries leave \(left), state says \(String(describing: stated))") }
            if left < 0 { fail("grant \(key) below zero") }
        }
        let stateGrants = summary.grants.values.reduce(0) { $0 + $1.count }
        if stateGrants != remaining.count { fail("state has \(stateGrants) grants, entries \(remaining.count)") }
        // Final balances: the last entry's balance per customer and currency.
        var last: [String: Int128] = [:]
        for entry in entries { last[entry.customer + "\u{0}" + entry.currency] = entry.balance.nanos }
        for (key, balance) in last where summary.balances[key] != balance {
            fail("final balance of \(key): entries \(balance), state \(String(describing: summary.balances[key]))")
        }
    }
}

// MARK: - State document, read back

/// The parts of a state document the tests compare.
struct StateSummary: Equatable {
    struct GrantState: Equatable {
        var remaining: Int128
        var status: String
    }

    /// customer → grant id → state.
    var grants: [String: [String: GrantState]] = [:]
    /// "customer\0currency" → available, in nanos.
    var balances: [String: Int128] = [:]
    var overages: [String: Int128] = [:]
    var applied: UInt64 = 0
    var duplicates: UInt64 = 0
    var rejected: UInt64 = 0

    init(_ document: [UInt8]) {
        guard let root = try? JSONValue.parse(document), case .object(let customers)? = root["customers"] else {
            Issue.record("state document does not parse: \(String(decoding: document.prefix(200), as: UTF8.self))")
            return
        }
        for (customer, currencies) in customers {
            guard case .object(let byCurrency) = currencies else { continue }
            for (currency, slot) in byCurrency {
                balances[customer + "\u{0}" + currency] = Self.nanos(slot["available"])
                overages[customer + "\u{0}" + currency] = Self.nanos(slot["overage"])
                guard case .object(let grantMap)? = slot["grants"] else { continue }
                for (id, grant) in grantMap {
                    grants[customer, default: [:]][id] = GrantState(
                        remaining: Self.nanos(grant["remaining"]), status: grant["status"]?.stringValue ?? "?")
                }
            }
        }
        applied = Self.count(root["applied"])
        duplicates = Self.count(root["duplicates"])
        rejected = Self.count(root["rejected"])
    }

    static func nanos(_ value: JSONValue?) -> Int128 {
        guard let text = value?.stringValue, case .success(let credits) = DecimalParser.parse(text) else { return -1 }
        return credits.nanos
    }

    static func count(_ value: JSONValue?) -> UInt64 {
        guard case .number(let text)? = value else { return UInt64.max }
        return UInt64(text) ?? UInt64.max
    }
}

// MARK: - Reference model

/// A deliberately slow, straightforward reading of SPEC §3: linear scans over every grant,
/// balances recomputed from scratch, no indexes, no heaps. It shares no code with the engine;
/// its input is the generator's own record of each message.
struct ReferenceModel {
    struct Entry: Equatable, CustomStringConvertible {
        var seq: UInt64
        var type: String
        var customer: String
        var currency: String
        var grant: String?
        var amount: Int128
        var source: String
        var timestamp: Int64
        var balance: Int128

        var description: String {
            "#\(seq) \(type) \(customer) \(currency) grant=\(grant ?? "-") amount=\(amount) source=\(source) t=\(timestamp) balance=\(balance)"
        }
    }

    enum Status { case pending, active, expired, voided }

    static func entry(_ entry: LedgerEntry) -> Entry {
        Entry(
            seq: entry.seq, type: entry.type.rawValue, customer: entry.customer, currency: entry.currency, grant: entry.grant,
            amount: entry.amount.nanos, source: entry.source, timestamp: entry.timestamp.nanos, balance: entry.balance.nanos)
    }

    struct Grant {
        var id: String
        var customer: String
        var terms: WorkloadGrant
        var remaining: Int128
        var status: Status
        var content: String
    }

    let config: EngineConfig
    var grants: [Grant] = []
    var watermarks: [String: Int64] = [:]
    var partitionWatermark = Int64.min
    var remembered: [String: (timestamp: Int64, content: String)] = [:]
    var seq: UInt64 = 0
    var applied: UInt64 = 0
    var duplicates: UInt64 = 0
    var output: [Entry] = []
    /// For the last usage applied: the eligible grants, in draw order, just before drawing.
    var eligibleAtDraw: [(id: String, remaining: Int128)] = []

    init(config: EngineConfig) { self.config = config }

    /// quantity × price, rounded half-to-even to 9 fractional digits (SPEC §2); or the pre-rated cost.
    static func cost(_ usage: WorkloadUsage) -> Credits {
        if let cost = usage.cost { return cost }
        let product = usage.quantity!.nanos * usage.unitPrice!.nanos  // 10^-18 units, both ≥ 0
        var quotient = product / 1_000_000_000
        let remainder = product % 1_000_000_000
        if remainder * 2 > 1_000_000_000 || (remainder * 2 == 1_000_000_000 && quotient % 2 == 1) { quotient += 1 }
        return Credits(nanos: quotient)
    }

    func available(_ customer: String, _ currency: String) -> Int128 {
        grants.filter { $0.customer == customer && $0.terms.currency == currency && $0.status == .active }
            .reduce(0) { $0 + $1.remaining }
    }

    mutating func write(_ type: String, _ g: Int?, customer: String, currency: String, amount: Int128, source: String, timestamp: Int64) {
        seq += 1
        output.append(
            Entry(
                seq: seq, type: type, customer: customer, currency: currency, grant: g.map { grants[$0].id }, amount: amount,
                source: source, timestamp: timestamp, balance: available(customer, currency)))
    }

    /// The grants a usage event may draw from, in draw order, with their remaining amounts.
    func eligible(for message: WorkloadMessage) -> [(id: String, remaining: Int128)] {
        let usage = message.usage!
        let order = grants.indices.filter { g in
            let grant = grants[g]
            return grant.customer == message.customer && grant.terms.currency == usage.currency && grant.status == .active
                && grant.remaining > 0 && grant.terms.effectiveAt <= message.timestamp
                && (grant.terms.expiresAt.map { $0 > message.timestamp } ?? true)
                && (grant.terms.meters == nil || (usage.meter.map { grant.terms.meters!.contains($0) } ?? false))
        }.sorted { a, b in
            let x = grants[a].terms, y = grants[b].terms
            if x.priority != y.priority { return x.priority < y.priority }
            let xe = x.expiresAt ?? Int64.max, ye = y.expiresAt ?? Int64.max
            if xe != ye { return xe < ye }
            if x.effectiveAt != y.effectiveAt { return x.effectiveAt < y.effectiveAt }
            return a < b
        }
        return order.map { (grants[$0].id, grants[$0].remaining) }
    }

    mutating func apply(_ message: WorkloadMessage) -> (Outcome, [Entry]) {
        output = []
        eligibleAtDraw = []
        let key = message.customer + "\u{0}" + message.id
        let t = message.timestamp
        if let watermark = watermarks[message.customer] {
            if t < watermark - config.dedupeWindow { return (.rejected(Rejection(.tooLate, "")), []) }
            if let seen = remembered[key], seen.timestamp >= watermark - config.dedupeWindow {
                duplicates += 1
                return (seen.content == message.content ? .duplicate : .conflict, [])
            }
            if message.type == .grant, let g = grants.firstIndex(where: { $0.customer == message.customer && $0.id == message.id }) {
                duplicates += 1
                return (grants[g].content == message.content ? .duplicate : .conflict, [])
            }
        }
        var target: Int?
        if message.type == .void {
            target = grants.firstIndex { $0.customer == message.customer && $0.id == message.voidGrant }
            if target == nil { return (.rejected(Rejection(.unknownGrant, "")), []) }
        }

        // Expiries due at this point, then the new watermarks, then activations.
        let customerWatermark = max(watermarks[message.customer] ?? Int64.min, t)
        let newPartitionWatermark = max(partitionWatermark, t)
        let due = grants.indices.filter { g in
            guard let expiresAt = grants[g].terms.expiresAt, grants[g].status == .pending || grants[g].status == .active else {
                return false
            }
            return (grants[g].customer == message.customer && expiresAt <= customerWatermark)
                || expiresAt <= newPartitionWatermark - config.expiryGrace
        }.sorted { (grants[$0].terms.expiresAt!, $0) < (grants[$1].terms.expiresAt!, $1) }
        for g in due { expire(g) }
        watermarks[message.customer] = customerWatermark
        partitionWatermark = newPartitionWatermark
        let activating = grants.indices.filter {
            grants[$0].customer == message.customer && grants[$0].status == .pending
                && grants[$0].terms.effectiveAt <= customerWatermark
        }.sorted { (grants[$0].terms.effectiveAt, $0) < (grants[$1].terms.effectiveAt, $1) }
        for g in activating {
            grants[g].status = .active
            write(
                "activate", g, customer: message.customer, currency: grants[g].terms.currency, amount: 0, source: grants[g].id,
                timestamp: grants[g].terms.effectiveAt)
        }

        switch message.type {
        case .usage:
            let usage = message.usage!
            var left = Self.cost(usage).nanos
            if left > 0 {
                eligibleAtDraw = eligible(for: message)
                for (id, _) in eligibleAtDraw where left > 0 {
                    let g = grants.firstIndex { $0.customer == message.customer && $0.id == id }!
                    let drawn = min(left, grants[g].remaining)
                    grants[g].remaining -= drawn
                    left -= drawn
                    write("draw", g, customer: message.customer, currency: usage.currency, amount: -drawn, source: message.id, timestamp: t)
                }
                if left > 0 {
                    write("overage", nil, customer: message.customer, currency: usage.currency, amount: left, source: message.id, timestamp: t)
                }
            }
        case .grant:
            let terms = message.grant!
            grants.append(
                Grant(
                    id: message.id, customer: message.customer, terms: terms, remaining: terms.amount.nanos,
                    status: terms.effectiveAt <= customerWatermark ? .active : .pending, content: message.content))
            let g = grants.count - 1
            write("grant", g, customer: message.customer, currency: terms.currency, amount: terms.amount.nanos, source: message.id, timestamp: t)
            if let expiresAt = terms.expiresAt,
                expiresAt <= customerWatermark || expiresAt <= partitionWatermark - config.expiryGrace
            {
                expire(g)
            }
        case .void:
            let g = target!
            if grants[g].status == .pending || grants[g].status == .active {
                let left = grants[g].remaining
                grants[g].status = .voided
                grants[g].remaining = 0
                if left > 0 {
                    write("void", g, customer: message.customer, currency: grants[g].terms.currency, amount: -left, source: message.id, timestamp: t)
                }
            }
        case .threshold:
            break
        }
        remembered[key] = (t, message.content)
        applied += 1
        return (.applied, output)
    }

    mutating func expire(_ g: Int) {
        let left = grants[g].remaining
        grants[g].status = .expired
        grants[g].remaining = 0
        if left > 0 {
            write(
                "expire", g, customer: grants[g].customer, currency: grants[g].terms.currency, amount: -left, source: grants[g].id,
                timestamp: grants[g].terms.expiresAt!)
        }
    }

    /// customer → grant id → remaining and status, as the state document should say.
    var grantSummary: [String: [String: StateSummary.GrantState]] {
        var result: [String: [String: StateSummary.GrantState]] = [:]
        for grant in grants {
            let status: String
            switch grant.status {
            case .pending: status = "pending"
            case .expired: status = "expired"
            case .voided: status = "voided"
            case .active: status = grant.remaining == 0 ? "spent" : "active"
            }
            result[grant.customer, default: [:]][grant.id] = StateSummary.GrantState(remaining: grant.remaining, status: status)
        }
        return result
    }
}
