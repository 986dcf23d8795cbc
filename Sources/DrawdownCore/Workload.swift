/// A seeded, deterministic synthetic workload: JSON-lines records for the property tests,
/// the benchmarks and `drawdown demo`.
///
/// The same `WorkloadSpec` gives the same bytes on every platform and toolchain: the
/// generator has its own PRNG (SplitMix64 seeding xoshiro256**) and its own bounded-integer
/// reduction, and never touches `Hasher`, the clock or Foundation.
///
/// Besides the bytes, each record comes with what the generator *meant*: the logical
/// message (quantity and the unit price it chose, grant terms, …), whether it is a resend
/// and of which record, and for broken records the reason the decoder must give. Tests
/// use that as an oracle that does not go through the engine.
public struct WorkloadSpec: Sendable, Equatable {
    public var seed: UInt64
    public var customers: Int
    public var messages: Int
    /// Grants per customer over the whole stream, on average.
    public var grantsPerCustomer: Int

    // Rates of the special records, per 10,000 messages.
    /// Records the decoder must reject (truncated JSON, wrong types, unknown meter, …).
    public var malformedPer10k: Int
    /// Byte-exact resends of a recent record (retries).
    public var exactResendPer10k: Int
    /// Resends of a recent record with other whitespace, field order and `null` fields.
    public var reformattedResendPer10k: Int
    /// A recent usage id sent again with a different quantity or cost.
    public var conflictPer10k: Int
    /// A usage id reused long after it left the dedupe window (a new message).
    public var reusedIDPer10k: Int
    public var voidPer10k: Int
    public var thresholdPer10k: Int
    /// Usage with an event time behind the customer's watermark, inside the window.
    public var outOfOrderPer10k: Int
    /// Usage older than the customer's watermark minus the dedupe window.
    public var tooLatePer10k: Int

    // Shapes of grants and usage, per 100.
    /// Grants whose `effective_at` is in the future.
    public var pendingGrantPer100: Int
    /// Grants with an `expires_at`.
    public var expiringGrantPer100: Int
    /// Grants that arrive already expired.
    public var expiredGrantPer100: Int
    /// Grants limited to some meters.
    public var scopedGrantPer100: Int
    /// Usage that carries a pre-rated `cost`.
    public var preRatedPer100: Int
    /// Share of usage that goes to the hottest 1 % of customers.
    public var hotCustomerPer100: Int

    /// Event time of the first message, in nanoseconds since the Unix epoch.
    public var startNanos: Int64
    /// Event time the stream covers from first to last message.
    public var spanNanos: Int64
    /// The dedupe window the stream is written against (for out-of-order and too-late times).
    public var dedupeWindow: Int64

    /// 2026-11-01T00:00:00Z.
    public static let defaultStartNanos: Int64 = 1_793_491_200 * 1_000_000_000
    static let hour: Int64 = 3_600 * 1_000_000_000

    public init(seed: UInt64 = 1, customers: Int = 100, messages: Int = 10_000) {
        self.seed = seed
        self.customers = max(1, customers)
        self.messages = max(0, messages)
        grantsPerCustomer = 3
        malformedPer10k = 50
        exactResendPer10k = 300
        reformattedResendPer10k = 60
        conflictPer10k = 40
        reusedIDPer10k = 20
        voidPer10k = 60
        thresholdPer10k = 60
        outOfOrderPer10k = 300
        tooLatePer10k = 30
        pendingGrantPer100 = 15
        expiringGrantPer100 = 40
        expiredGrantPer100 = 3
        scopedGrantPer100 = 20
        preRatedPer100 = 10
        hotCustomerPer100 = 30
        startNanos = WorkloadSpec.defaultStartNanos
        spanNanos = 72 * WorkloadSpec.hour
        dedupeWindow = EngineConfig.defaultDedupeWindow
    }

    /// The workload of the issue's measurements: 1,000,000 messages for 100,000 customers
    /// with a few grants each, mostly ordinary usage (~150 bytes a record).
    public static func benchmark(seed: UInt64 = 1, messages: Int = 1_000_000, customers: Int = 100_000) -> WorkloadSpec {
        var spec = WorkloadSpec(seed: seed, customers: customers, messages: messages)
        spec.malformedPer10k = 10
        spec.exactResendPer10k = 100
        spec.reformattedResendPer10k = 10
        spec.conflictPer10k = 10
        spec.reusedIDPer10k = 5
        spec.voidPer10k = 20
        spec.thresholdPer10k = 20
        spec.outOfOrderPer10k = 200
        spec.tooLatePer10k = 10
        return spec
    }
}

/// What a generated record is.
public enum WorkloadKind: Sendable, Equatable {
    case usage, grant, void, threshold
    /// Byte-exact resend of record `original`.
    case exactResend
    /// Same message as record `original`, written differently (whitespace, order, nulls).
    case reformattedResend
    /// Same customer and id as record `original`, different content.
    case conflictingResend
    /// A record the decoder must reject with `expected`.
    case malformed
}

/// What the generator chose for a usage event.
public struct WorkloadUsage: Sendable, Equatable {
    public var meter: String?
    public var quantity: Credits?
    /// The unit price the generator meant to apply (nil when pre-rated).
    public var unitPrice: Credits?
    /// The pre-rated cost, when the record carries one.
    public var cost: Credits?
    public var currency: String
}

/// The terms the generator wrote for a grant (defaults resolved).
public struct WorkloadGrant: Sendable, Equatable {
    public var amount: Credits
    public var currency: String
    public var priority: Int
    public var effectiveAt: Int64
    public var expiresAt: Int64?
    public var meters: [String]?
}

/// The logical message behind a record.
public struct WorkloadMessage: Sendable, Equatable {
    public var type: MessageType
    public var id: String
    public var customer: String
    /// Event time in nanoseconds.
    public var timestamp: Int64
    /// Canonical content: equal exactly when two records are the same message
    /// (SPEC §3.1: whitespace, field order and `null` optional fields do not count).
    public var content: String
    public var usage: WorkloadUsage?
    public var grant: WorkloadGrant?
    /// For `void`: the grant named.
    public var voidGrant: String?
    /// For `threshold`.
    public var thresholdCurrency: String?
    public var levels: [Credits]?
}

/// One generated record and what it was meant to be.
public struct WorkloadRecord: Sendable {
    /// 0-based position in the stream.
    public var index: Int
    public var kind: WorkloadKind
    /// The logical message; nil for `malformed`.
    public var message: WorkloadMessage?
    /// For resends: the record resent.
    public var original: Int?
    /// The rejection the generator aimed for: the decoder's reason for `malformed`;
    /// `tooLate` and `unknownGrant` as intent (the engine decides those).
    public var expected: RejectReason?
    /// Usage written with an event time behind the customer's watermark.
    public var outOfOrder: Bool
}

/// Streams a workload record by record.
public struct WorkloadGenerator: Sendable {
    public let spec: WorkloadSpec
    private var random: WorkloadRandom
    private var produced = 0
    private var clock: Int64
    private let gapMax: Int64
    private var grantShareper10k: Int
    private var eventSeq = 0
    private var grantSeq = 0
    private var badSeq = 0
    /// Per customer: the largest event time the generator expects applied, and its grant ids.
    private var watermarks: [Int64]
    private var grantIDs: [[String]]
    /// Recent valid records, for resends.
    private var recent: [Recent] = []
    private var recentNext = 0
    /// A sample of older usage, for ids reused after the window.
    private var old: [(customer: Int, id: String, timestamp: Int64)] = []

    static let recentMax = 256
    static let oldMax = 4_096

    struct Recent: Sendable {
        var index: Int
        var fields: [Field]
        var message: WorkloadMessage
        var bytes: [UInt8]
    }

    typealias Field = (key: String, value: String)

    public init(_ spec: WorkloadSpec) {
        self.spec = spec
        random = WorkloadRandom(seed: spec.seed)
        clock = spec.startNanos
        gapMax = spec.messages > 0 ? max(2, 2 * spec.spanNanos / Int64(spec.messages)) : 2
        grantShareper10k = spec.messages > 0
            ? min(4_000, max(100, spec.customers * spec.grantsPerCustomer * 10_000 / spec.messages)) : 0
        watermarks = Array(repeating: Int64.min, count: spec.customers)
        grantIDs = Array(repeating: [], count: spec.customers)
    }

    /// The customer name of index `n`: mostly `cus_000123`; every 50th has a non-ASCII name.
    public static func customerName(_ n: Int) -> String {
        var digits = String(n)
        while digits.utf8.count < 6 { digits = "0" + digits }
        return n % 50 == 7 ? "acme-ü-" + digits : "cus_" + digits
    }

    /// Generates the next record, appending its bytes and a `\n` to `out`.
    public mutating func next(into out: inout [UInt8]) -> WorkloadRecord? {
        guard produced < spec.messages else { return nil }
        let index = produced
        produced += 1
        clock += random.below(gapMax)
        clock -= clock % 1_000_000  // whole milliseconds keep the text short

        var roll = random.below(10_000)
        func take(_ rate: Int) -> Bool {
            if roll < rate { return true }
            roll -= rate
            return false
        }
        var record: WorkloadRecord
        if take(spec.malformedPer10k) {
            record = malformed(index: index, into: &out)
        } else if take(spec.exactResendPer10k), let pick = pickRecent() {
            out.append(contentsOf: pick.bytes)
            record = WorkloadRecord(index: index, kind: .exactResend, message: pick.message, original: pick.index, outOfOrder: false)
        } else if take(spec.reformattedResendPer10k), let pick = pickRecent() {
            var fields = pick.fields
            fields.reverse()
            let nullable = pick.message.type == .usage ? ["currency", "properties"] : pick.message.type == .grant
                ? ["expires_at", "meters", "category"] : ["currency"]
            let extra = nullable[random.below(nullable.count)]
            if !fields.contains(where: { $0.key == extra }) { fields.insert((extra, "null"), at: random.below(fields.count + 1)) }
            render(fields, spaced: true, into: &out)
            record = WorkloadRecord(index: index, kind: .reformattedResend, message: pick.message, original: pick.index, outOfOrder: false)
        } else if take(spec.conflictPer10k), let pick = pickRecent(type: .usage) {
            record = conflicting(pick, index: index, into: &out)
        } else if take(spec.reusedIDPer10k), let reuse = pickOld() {
            record = usage(customer: reuse.customer, id: reuse.id, timestamp: clock, index: index, into: &out)
        } else if take(spec.voidPer10k) {
            record = void(index: index, into: &out)
        } else if take(spec.thresholdPer10k) {
            record = threshold(index: index, into: &out)
        } else if take(spec.tooLatePer10k), let late = tooLate() {
            record = usage(customer: late.customer, id: nextEventID(), timestamp: late.timestamp, index: index, into: &out)
            record.expected = .tooLate
            record.outOfOrder = true
        } else if take(spec.outOfOrderPer10k) {
            let c = pickCustomer()
            let behind = 1_000_000_000 + random.below(max(2, spec.dedupeWindow / 4))
            var t = clock - behind
            if watermarks[c] != Int64.min { t = max(t, watermarks[c] - spec.dedupeWindow + 1_000_000_000) }
            t -= t % 1_000_000
            record = usage(customer: c, id: nextEventID(), timestamp: t, index: index, into: &out)
            record.outOfOrder = t < watermarks[c]
        } else if random.below(10_000) < grantShareper10k {
            record = grant(customer: pickCustomer(), index: index, into: &out)
        } else {
            record = usage(customer: pickCustomer(), id: nextEventID(), timestamp: clock, index: index, into: &out)
        }
        out.append(0x0A)
        return record
    }

    // MARK: Choices

    private mutating func pickCustomer() -> Int {
        let hot = max(1, spec.customers / 100)
        if random.below(100) < spec.hotCustomerPer100 { return random.below(hot) }
        return random.below(spec.customers)
    }

    private mutating func pickRecent(type: MessageType? = nil) -> Recent? {
        guard !recent.isEmpty else { return nil }
        let pick = recent[random.below(recent.count)]
        if let type, pick.message.type != type { return nil }
        return pick
    }

    private mutating func remember(_ index: Int, _ fields: [Field], _ message: WorkloadMessage, _ bytes: ArraySlice<UInt8>) {
        let entry = Recent(index: index, fields: fields, message: message, bytes: Array(bytes))
        if recent.count < WorkloadGenerator.recentMax {
            recent.append(entry)
        } else {
            recent[recentNext] = entry
            recentNext = (recentNext + 1) % WorkloadGenerator.recentMax
        }
    }

    private mutating func pickOld() -> (customer: Int, id: String)? {
        guard !old.isEmpty else { return nil }
        let pick = old[random.below(old.count)]
        guard pick.timestamp < clock - spec.dedupeWindow - WorkloadSpec.hour else { return nil }
        return (pick.customer, pick.id)
    }

    private mutating func tooLate() -> (customer: Int, timestamp: Int64)? {
        let c = pickCustomer()
        guard watermarks[c] != Int64.min else { return nil }
        var t = watermarks[c] - spec.dedupeWindow - 1_000_000_000 - random.below(6 * WorkloadSpec.hour)
        t -= t % 1_000_000 + 1_000_000
        return (c, t)
    }

    private mutating func nextEventID() -> String {
        eventSeq += 1
        var digits = String(eventSeq)
        while digits.utf8.count < 10 { digits = "0" + digits }
        return "e" + digits
    }

    private mutating func advanceWatermark(_ c: Int, _ t: Int64) {
        watermarks[c] = max(watermarks[c], t)
    }

    // MARK: Records

    private mutating func usage(customer c: Int, id: String, timestamp: Int64, index: Int, into out: inout [UInt8])
        -> WorkloadRecord
    {
        let customer = WorkloadGenerator.customerName(c)
        var fields = header(random.below(10) == 0 ? "usage" : nil, id: id, customer: customer, timestamp: timestamp)
        var info = WorkloadUsage(meter: nil, quantity: nil, unitPrice: nil, cost: nil, currency: "credits")
        let meter = WorkloadPrices.meters[random.below(WorkloadPrices.meters.count)]
        if random.below(100) < spec.preRatedPer100 {
            // Pre-rated: a cost, sometimes zero, with or without a meter.
            let cost: Int64 = random.below(4) == 0 ? 0 : random.below(Int64(2_000_000_000)) + 1
            if random.below(2) == 0 {
                fields.append(("meter", quoted(meter.name)))
                info.meter = meter.name
                info.currency = meter.currency ?? "credits"
            }
            fields.append(("cost", decimalText(cost, style: random.below(4))))
            info.cost = Credits(nanos: Int128(cost))
            if random.below(5) == 0 {
                info.currency = random.below(3) == 0 ? "usd" : "credits"
                fields.append(("currency", quoted(info.currency)))
            }
        } else {
            fields.append(("meter", quoted(meter.name)))
            info.meter = meter.name
            info.currency = meter.currency ?? "credits"
            let quantity = meter.quantity(&random)
            fields.append(("quantity", decimalText(quantity, style: random.below(4))))
            info.quantity = Credits(nanos: Int128(quantity))
            info.unitPrice = Credits(nanos: Int128(meter.unitPrice))
            if meter.by != nil {
                switch random.below(10) {
                case 0: break  // no properties: unit price
                case 1: fields.append(("properties", #"{"model":7}"#))
                case 2: fields.append(("properties", #"{"model":"medium"}"#))
                default:
                    let choice = meter.prices[random.below(meter.prices.count)]
                    fields.append(("properties", #"{"model":""# + choice.name + #""}"#))
                    info.unitPrice = Credits(nanos: Int128(choice.price))
                }
            } else {
                fields.append(("properties", #"{"sku":"std"}"#))
            }
            if random.below(30) == 0 {
                fields.append(("currency", quoted(info.currency)))
            }
        }
        let message = WorkloadMessage(
            type: .usage, id: id, customer: customer, timestamp: timestamp, content: canonical(fields), usage: info)
        if old.count < WorkloadGenerator.oldMax {
            old.append((c, id, timestamp))
        } else if random.below(16) == 0 {
            old[random.below(WorkloadGenerator.oldMax)] = (c, id, timestamp)
        }
        return emit(.usage, fields, message, customer: c, index: index, into: &out)
    }

    private mutating func grant(customer c: Int, index: Int, into out: inout [UInt8]) -> WorkloadRecord {
        let customer = WorkloadGenerator.customerName(c)
        grantSeq += 1
        let id = "g" + String(grantSeq)
        let t = clock
        var fields = header("grant", id: id, customer: customer, timestamp: t)
        let usd = random.below(7) == 0
        let currency = usd ? "usd" : "credits"
        let amount: Int64 = usd ? (random.below(Int64(30)) + 1) * 1_000_000_000 : random.below(Int64(60_000)) * 1_000_000 + 500_000_000
        fields.append(("amount", decimalText(amount, style: random.below(4))))
        if usd || random.below(20) == 0 { fields.append(("currency", quoted(currency))) }
        var priority = MessageLimits.priorityDefault
        let priorities = [-1, 0, 10, 10, 100, 100, 500, 1000]
        let chosen = priorities[random.below(priorities.count)]
        if chosen >= 0 {
            priority = chosen
            fields.append(("priority", String(chosen)))
        }
        let categories = ["paid", "promotional", "compensation"]
        if random.below(2) == 0 { fields.append(("category", quoted(categories[random.below(3)]))) }
        var effectiveAt = t
        var expiresAt: Int64?
        if random.below(100) < spec.expiredGrantPer100 {
            effectiveAt = t - 3 * WorkloadSpec.hour
            expiresAt = t - 60_000_000_000 - random.below(2 * WorkloadSpec.hour) / 1_000_000 * 1_000_000
        } else {
            if random.below(100) < spec.pendingGrantPer100 {
                effectiveAt = t + 60_000_000_000 + random.below(6 * WorkloadSpec.hour) / 1_000_000 * 1_000_000
            } else if random.below(10) == 0 {
                effectiveAt = t - random.below(WorkloadSpec.hour) / 1_000_000 * 1_000_000
            }
            if random.below(100) < spec.expiringGrantPer100 {
                expiresAt = effectiveAt + 600_000_000_000 + random.below(48 * WorkloadSpec.hour) / 1_000_000 * 1_000_000
            }
        }
        if effectiveAt != t || random.below(20) == 0 { fields.append(("effective_at", quoted(timeText(effectiveAt)))) }
        if let expiresAt { fields.append(("expires_at", quoted(timeText(expiresAt)))) }
        var meters: [String]?
        if random.below(100) < spec.scopedGrantPer100 {
            let scopes = usd ? [["api.calls"]] : [["llm.tokens"], ["gpu.seconds", "storage.gb"], ["storage.gb"]]
            meters = scopes[random.below(scopes.count)]
            fields.append(("meters", "[" + meters!.map(quoted).joined(separator: ",") + "]"))
        }
        let terms = WorkloadGrant(
            amount: Credits(nanos: Int128(amount)), currency: currency, priority: priority, effectiveAt: effectiveAt,
            expiresAt: expiresAt, meters: meters)
        let message = WorkloadMessage(
            type: .grant, id: id, customer: customer, timestamp: t, content: canonical(fields), grant: terms)
        grantIDs[c].append(id)
        return emit(.grant, fields, message, customer: c, index: index, into: &out)
    }

    private mutating func void(index: Int, into out: inout [UInt8]) -> WorkloadRecord {
        let c = pickCustomer()
        let customer = WorkloadGenerator.customerName(c)
        let id = "v" + String(index)
        var target: String
        var expected: RejectReason?
        if grantIDs[c].isEmpty || random.below(10) == 0 {
            target = "g_missing_" + String(index)
            expected = .unknownGrant
        } else {
            target = grantIDs[c][random.below(grantIDs[c].count)]
        }
        let fields = header("void", id: id, customer: customer, timestamp: clock) + [("grant", quoted(target))]
        let message = WorkloadMessage(
            type: .void, id: id, customer: customer, timestamp: clock, content: canonical(fields), voidGrant: target)
        return emit(.void, fields, message, customer: c, index: index, expected: expected, into: &out)
    }

    private mutating func threshold(index: Int, into out: inout [UInt8]) -> WorkloadRecord {
        let c = pickCustomer()
        let customer = WorkloadGenerator.customerName(c)
        let id = "t" + String(index)
        let currency = random.below(5) == 0 ? "usd" : "credits"
        var fields = header("threshold", id: id, customer: customer, timestamp: clock)
        if currency == "usd" || random.below(4) == 0 { fields.append(("currency", quoted(currency))) }
        var levels: [Credits] = []
        for _ in 0..<(1 + random.below(3)) { levels.append(Credits(nanos: Int128(random.below(Int64(50_000)) * 1_000_000))) }
        fields.append(("levels", "[" + levels.map { decimalText(Int64($0.nanos), style: random.below(4)) }.joined(separator: ",") + "]"))
        let message = WorkloadMessage(
            type: .threshold, id: id, customer: customer, timestamp: clock, content: canonical(fields),
            thresholdCurrency: currency, levels: levels)
        return emit(.threshold, fields, message, customer: c, index: index, into: &out)
    }

    private mutating func conflicting(_ pick: Recent, index: Int, into out: inout [UInt8]) -> WorkloadRecord {
        var fields = pick.fields
        var message = pick.message
        var usage = message.usage!
        if let q = fields.firstIndex(where: { $0.key == "quantity" }) {
            let quantity = Int64(usage.quantity!.nanos) + 1_000_000_000 * (1 + random.below(Int64(5)))
            fields[q].value = decimalText(quantity, style: 0)
            usage.quantity = Credits(nanos: Int128(quantity))
        } else if let k = fields.firstIndex(where: { $0.key == "cost" }) {
            let cost = Int64(usage.cost!.nanos) + 1_000_000 * (1 + random.below(Int64(500)))
            fields[k].value = decimalText(cost, style: 0)
            usage.cost = Credits(nanos: Int128(cost))
        }
        message.usage = usage
        message.content = canonical(fields)
        render(fields, spaced: false, into: &out)
        return WorkloadRecord(
            index: index, kind: .conflictingResend, message: message, original: pick.index, expected: nil, outOfOrder: false)
    }

    private mutating func malformed(index: Int, into out: inout [UInt8]) -> WorkloadRecord {
        badSeq += 1
        let id = quoted("bad" + String(badSeq))
        let customer = quoted(WorkloadGenerator.customerName(pickCustomer()))
        let time = quoted(timeText(clock))
        let head = #"{"id":"# + id + #","customer":"# + customer + #","timestamp":"# + time
        let reason: RejectReason
        var text: String
        switch random.below(10) {
        case 0:
            let whole = head + #","meter":"gpu.seconds","quantity":12}"#
            let cut = 1 + random.below(whole.utf8.count - 1)
            text = String(decoding: Array(whole.utf8)[0..<cut], as: UTF8.self)
            // A cut inside "ü" leaves a replacement character: still not a JSON object.
            reason = .malformed
        case 1:
            text = head + #","meter":"gpu.seconds","quantity":true}"#
            reason = .invalidField
        case 2:
            text = #"{"id":"# + id + #","customer":"# + customer + #","meter":"gpu.seconds","quantity":1}"#
            reason = .missingField
        case 3:
            text = head + #","meter":"gpu.seconds","quantity":"0.0000000001"}"#
            reason = .precision
        case 4:
            text = head + #","meter":"no.such.meter","quantity":1}"#
            reason = .unknownMeter
        case 5:
            text = #"{"type":"refund","id":"# + id + #","customer":"# + customer + #","timestamp":"# + time + "}"
            reason = .unknownType
        case 6:
            text = head + #","meter":"gpu.seconds","quantity":-3}"#
            reason = .invalidField
        case 7:
            text = #"{"id":"","customer":"# + customer + #","timestamp":"# + time + #","cost":1}"#
            reason = .invalidField
        case 8:
            text = head + #","meter":"gpu.seconds","quantity":1,"quantity":2}"#
            reason = .malformed
        default:
            // Invalid UTF-8: a lone 0xFF byte inside the meter name.
            out.append(contentsOf: Array((head + #","meter":"gpu"#).utf8))
            out.append(0xFF)
            out.append(contentsOf: Array(#"seconds","quantity":1}"#.utf8))
            return WorkloadRecord(index: index, kind: .malformed, message: nil, original: nil, expected: .malformed, outOfOrder: false)
        }
        out.append(contentsOf: Array(text.utf8))
        return WorkloadRecord(index: index, kind: .malformed, message: nil, original: nil, expected: reason, outOfOrder: false)
    }

    private mutating func header(_ type: String?, id: String, customer: String, timestamp: Int64) -> [Field] {
        let common: [Field] = [("id", quoted(id)), ("customer", quoted(customer)), ("timestamp", quoted(timeText(timestamp)))]
        return type.map { [("type", quoted($0))] + common } ?? common
    }

    /// Writes a record; one the engine should apply is kept for resends and moves the watermark.
    private mutating func emit(
        _ kind: WorkloadKind, _ fields: [Field], _ message: WorkloadMessage, customer c: Int, index: Int,
        expected: RejectReason? = nil, into out: inout [UInt8]
    ) -> WorkloadRecord {
        let start = out.count
        render(fields, spaced: false, into: &out)
        if expected == nil {
            remember(index, fields, message, out[start...])
            advanceWatermark(c, message.timestamp)
        }
        return WorkloadRecord(index: index, kind: kind, message: message, original: nil, expected: expected, outOfOrder: false)
    }

    // MARK: Text

    private func render(_ fields: [Field], spaced: Bool, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if spaced { out.append(0x20) }
        for (n, field) in fields.enumerated() {
            if n > 0 { out.append(contentsOf: spaced ? Array(" ,\t".utf8) : [UInt8(ascii: ",")]) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: Array(field.key.utf8))
            out.append(contentsOf: spaced ? Array("\" : ".utf8) : Array("\":".utf8))
            out.append(contentsOf: Array(field.value.utf8))
        }
        if spaced { out.append(0x20) }
        out.append(UInt8(ascii: "}"))
    }

    /// Sorted `key=value` pairs without `null`s: equal for the same message however written.
    private func canonical(_ fields: [Field]) -> String {
        fields.filter { $0.value != "null" }.map { $0.key + "=" + $0.value }.sorted().joined(separator: ";")
    }

    private func quoted(_ text: String) -> String { "\"" + text + "\"" }

    /// RFC 3339 in UTC with milliseconds; one in twenty is written with a `+01:00` offset.
    private mutating func timeText(_ nanos: Int64) -> String {
        if random.below(20) == 0 {
            return EventTime(nanos: nanos, offsetMinutes: 60, fractionDigits: 3, style: EventTime.Style.numericOffset).description
        }
        return EventTime(nanos: nanos, fractionDigits: 3).description
    }

    /// A decimal in one of four spellings: 0 a JSON number, 1 a decimal string,
    /// 2 a string with a trailing zero, 3 a number with a trailing zero.
    private func decimalText(_ nanos: Int64, style: Int) -> String {
        var text = Credits(nanos: Int128(nanos)).description
        if style >= 2 {
            let fractionDigits = text.split(separator: ".").dropFirst().first?.count ?? 0
            if fractionDigits < Credits.fractionDigits { text += fractionDigits == 0 ? ".0" : "0" }
        }
        return style == 1 || style == 2 ? "\"" + text + "\"" : text
    }
}

// MARK: - Workload

/// Whole workloads, and the price book they are rated with.
public enum Workload {
    /// The whole stream as JSON lines.
    public static func jsonLines(_ spec: WorkloadSpec) -> [UInt8] {
        var generator = WorkloadGenerator(spec)
        var out: [UInt8] = []
        out.reserveCapacity(spec.messages * 160)
        while generator.next(into: &out) != nil {}
        return out
    }

    /// Every record with its own bytes (no trailing newline), for tests.
    public static func records(_ spec: WorkloadSpec) -> [(bytes: [UInt8], record: WorkloadRecord)] {
        var generator = WorkloadGenerator(spec)
        var result: [(bytes: [UInt8], record: WorkloadRecord)] = []
        result.reserveCapacity(spec.messages)
        var line: [UInt8] = []
        while let record = generator.next(into: &line) {
            line.removeLast()
            result.append((line, record))
            line.removeAll(keepingCapacity: true)
        }
        return result
    }

    /// The price book the generator rates against, as `drawdown process --prices` reads it.
    public static let priceBookJSON: String = """
        {"meters": {
          "llm.tokens":  {"unit_price": "0.000002", "currency": "credits", "by": "model",
                          "prices": {"large": "0.00001", "small": "0.0000005"}},
          "gpu.seconds": {"unit_price": "0.0025"},
          "api.calls":   {"unit_price": "0.01", "currency": "usd"},
          "storage.gb":  {"unit_price": "0.333333333"}
        }}

        """

    /// The same price book, built directly.
    public static var priceBook: PriceBook {
        var book = PriceBook()
        for meter in WorkloadPrices.meters {
            var prices: [String: Credits] = [:]
            for choice in meter.prices { prices[choice.name] = Credits(nanos: Int128(choice.price)) }
            book.meters[meter.name] = PriceBook.MeterPrice(
                unitPrice: Credits(nanos: Int128(meter.unitPrice)), currency: meter.currency, by: meter.by, prices: prices)
        }
        return book
    }
}

/// The generator's own price table (mirrors `Workload.priceBookJSON`), in nanos.
enum WorkloadPrices {
    struct Meter {
        var name: String
        var unitPrice: Int64
        var currency: String?
        var by: String?
        var prices: [(name: String, price: Int64)]
        /// Quantity range, in nanos, and the granularity quantities are written with.
        var quantityMax: Int64
        var quantityStep: Int64

        func quantity(_ random: inout WorkloadRandom) -> Int64 {
            (random.below(quantityMax / quantityStep) + 1) * quantityStep
        }
    }

    static let meters: [Meter] = [
        Meter(
            name: "llm.tokens", unitPrice: 2_000, currency: "credits", by: "model",
            prices: [("large", 10_000), ("small", 500)], quantityMax: 20_000 * 1_000_000_000, quantityStep: 1_000_000_000),
        Meter(name: "llm.tokens", unitPrice: 2_000, currency: "credits", by: "model",
            prices: [("large", 10_000), ("small", 500)], quantityMax: 4_000 * 1_000_000_000, quantityStep: 1_000_000_000),
        Meter(name: "gpu.seconds", unitPrice: 2_500_000, currency: nil, by: nil, prices: [],
            quantityMax: 600 * 1_000_000_000, quantityStep: 1_000_000),
        Meter(name: "api.calls", unitPrice: 10_000_000, currency: "usd", by: nil, prices: [],
            quantityMax: 100 * 1_000_000_000, quantityStep: 1_000_000_000),
        Meter(name: "storage.gb", unitPrice: 333_333_333, currency: nil, by: nil, prices: [],
            quantityMax: 5 * 1_000_000_000, quantityStep: 1_000),
    ]
}

// MARK: - WorkloadRandom

/// xoshiro256** seeded through SplitMix64: small, fast, and the same everywhere.
public struct WorkloadRandom: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&x)
        s1 = splitMix(&x)
        s2 = splitMix(&x)
        s3 = splitMix(&x)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A value in `0..<bound` (multiply-shift reduction; bias below 2^-40 for our bounds).
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    public mutating func below(_ bound: Int64) -> Int64 {
        precondition(bound > 0)
        return Int64(next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}
