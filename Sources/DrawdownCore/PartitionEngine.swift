/// Engine settings (SPEC §3), in nanoseconds of event time.
public struct EngineConfig: Sendable, Equatable {
    public static let defaultDedupeWindow: Int64 = 24 * 3_600 * 1_000_000_000
    public static let defaultExpiryGrace: Int64 = 3_600 * 1_000_000_000

    public var dedupeWindow: Int64
    public var expiryGrace: Int64

    public init(dedupeWindow: Int64 = EngineConfig.defaultDedupeWindow, expiryGrace: Int64 = EngineConfig.defaultExpiryGrace) {
        self.dedupeWindow = dedupeWindow
        self.expiryGrace = expiryGrace
    }
}

/// What happened to one message.
public enum Outcome: Sendable, Equatable {
    /// Applied; its entries (possibly none) were appended to `entries`.
    case applied
    /// Already applied with the same content: skipped.
    case duplicate
    /// Already applied with different content: skipped, and to be reported as `conflict`.
    case conflict
    case rejected(Rejection)
}

/// The drawdown state machine of one input partition (SPEC §3): pure, deterministic, no
/// I/O and no clock. The same messages in the same order give the same entries, byte for
/// byte. Apply messages with `apply(_:)`; read the resulting entries and alerts from
/// `entries` and `alerts`, and clear them with `takeOutput()` between batches.
public struct PartitionEngine: Sendable {
    public let config: EngineConfig
    /// The partition this state belongs to (carried into outputs).
    public let partition: Int32

    // Customers, their currencies and grants, indexed by dense per-partition numbers. A
    // customer's currencies and grant lists are chains through these arrays (see
    // `CustomerRecord`), not arrays of their own: no allocation per customer, one uniqueness
    // check per mutation, and the records of all customers packed together.
    var customers: [CustomerRecord] = []
    /// Currency records of every customer; a customer's are chained by `CurrencyRecord.next`.
    var currencies: [CurrencyRecord] = []
    /// Customer numbers by `CustomerKey.hash`.
    var customerIndex = HashIndex()
    var grants: [GrantRecord] = []
    /// Grant numbers by `GrantKey.hash(customer:id:)`.
    var grantIndex = HashIndex()
    /// Grants that may expire, by (expires_at, apply order): the idle-customer sweep.
    var expiryQueue = MinHeap()
    var dedupe = DedupeTable()

    /// Largest timestamp applied in this partition (nil before the first).
    public internal(set) var partitionWatermark: Int64 = Int64.min
    /// Sequence number of the last entry written.
    public internal(set) var lastSeq: UInt64 = 0
    public internal(set) var applied: UInt64 = 0
    public internal(set) var duplicates: UInt64 = 0
    public internal(set) var rejected: UInt64 = 0

    /// Output of the messages applied since the last `takeOutput()`.
    public internal(set) var entries: [LedgerEntry] = []
    public private(set) var alerts: [Alert] = []

    // Scratch, reused per message.
    private var expiring: [Int32] = []
    private var activating: [Int32] = []
    private var touched: [(customer: Int32, currency: Int32)] = []
    /// How many of `touched` the current message touched (the rest is stale, kept so that
    /// starting a message is one store instead of emptying the array).
    private var touchedCount = 0
    /// Where `warm`'s loads go (read by nothing).
    var warmSink: UInt64 = 0

    public init(partition: Int32 = 0, config: EngineConfig = EngineConfig()) {
        self.partition = partition
        self.config = config
        entries.reserveCapacity(1024)
    }

    /// Hands the accumulated entries and alerts to the caller and starts afresh.
    public mutating func takeOutput() -> (entries: [LedgerEntry], alerts: [Alert]) {
        defer {
            entries.removeAll(keepingCapacity: true)
            alerts.removeAll(keepingCapacity: true)
        }
        return (entries, alerts)
    }

    /// Drops accumulated output without copying it (for benchmarks and counting runs).
    public mutating func discardOutput() {
        entries.removeAll(keepingCapacity: true)
        alerts.removeAll(keepingCapacity: true)
    }

    /// Counts a record the decoder rejected (it changes no state).
    public mutating func countRejected() { rejected += 1 }

    // MARK: - Apply

    /// Applies one decoded message. Checks run in the order of SPEC §3: `too_late`,
    /// duplicate (and `conflict`), then references (`unknown_grant`).
    public mutating func apply(_ message: Message) -> Outcome {
        let t = message.timestamp.nanos
        let (customerKey, fingerprint) = message.key
        let existingCustomer = customerNumber(customerKey)
        // A grant's id is hashed once, for the duplicate check and for indexing the new grant.
        let grantIDHash: UInt64
        if case .grant = message.body { grantIDHash = GrantKey.idHash(message.id) } else { grantIDHash = 0 }

        if let c = existingCustomer {
            let watermark = customers[Int(c)].watermark
            // too_late: older than the customer's watermark minus the window.
            if watermark != Int64.min, t < watermark &- config.dedupeWindow {
                rejected += 1
                return .rejected(Rejection(.tooLate, "timestamp is more than the dedupe window behind the customer's watermark"))
            }
            // Duplicate: the key is remembered while its timestamp is inside the window.
            if let remembered = dedupe.lookup(fingerprint), remembered.timestamp >= watermark &- config.dedupeWindow {
                duplicates += 1
                return remembered.contentHash == message.contentHash ? .duplicate : .conflict
            }
            // A grant id names its grant for good: a resend is a duplicate whatever its fields.
            if case .grant = message.body, let g = grantNumber(customer: c, id: message.id, idHash: grantIDHash) {
                duplicates += 1
                return grants[Int(g)].contentHash == message.contentHash ? .duplicate : .conflict
            }
        }
        // References.
        var voidTarget: Int32?
        if case .void(let grantID) = message.body {
            guard let c = existingCustomer, let g = grantNumber(customer: c, id: grantID) else {
                rejected += 1
                return .rejected(Rejection(.unknownGrant, "no grant \"\(grantID)\" for this customer"))
            }
            voidTarget = g
        }

        // Accepted: move the watermarks, write what became due, then apply.
        let c = existingCustomer ?? addCustomer(customerKey)
        touchedCount = 0
        let newCustomerWatermark = max(customers[Int(c)].watermark, t)
        let newPartitionWatermark = max(partitionWatermark, t)
        // The calls are made only when something may be due (the common message has nothing
        // to expire or activate, and the calls alone cost ~50 instructions).
        if customers[Int(c)].nextExpiry <= newCustomerWatermark || expiryQueue.hasItem(dueBy: newPartitionWatermark &- config.expiryGrace) {
            expireDue(customer: c, customerWatermark: newCustomerWatermark, partitionWatermark: newPartitionWatermark)
        }
        customers[Int(c)].watermark = newCustomerWatermark
        partitionWatermark = newPartitionWatermark
        if customers[Int(c)].nextActivation <= newCustomerWatermark { activateDue(customer: c) }

        switch message.body {
        case .usage(let usage):
            applyUsage(usage, customer: c, message: message)
        case .grant(let terms):
            applyGrant(terms, customer: c, message: message, idHash: grantIDHash)
        case .void:
            applyVoid(voidTarget!, message: message)
        case .threshold(let threshold):
            let r = currencyRecord(customer: c, currency: threshold.currency)
            currencies[Int(r)].setLevels(threshold.levels)
        }

        // The sweep's closure is built only when the table is full: capturing `customers` for
        // every message cost an atomic retain and release of the array.
        if dedupe.isFull {
            dedupe.makeRoom {
                [customers, window = config.dedupeWindow, fresh = partitionWatermark &- config.dedupeWindow] customer, timestamp in
                // Every customer's watermark is at most the partition's: a key this recent is kept
                // without reading its customer (a cache miss per key while the table is swept).
                timestamp >= fresh ? false : timestamp < customers[customer].watermark &- window
            }
        }
        dedupe.insert(fingerprint, customer: Int(c), timestamp: t, contentHash: message.contentHash)
        applied += 1
        evaluateAlerts(message: message)
        return .applied
    }

    private mutating func addCustomer(_ key: CustomerKey) -> Int32 {
        let index = Int32(customers.count)
        customers.append(CustomerRecord(id: key.id))
        customerIndex.insert(key.hash, index)
        return index
    }

    /// The number of a known customer.
    @inline(__always)
    func customerNumber(_ key: CustomerKey) -> Int32? {
        customerIndex.find(key.hash) { customers[Int($0)].id == key.id }
    }

    func customerNumber(_ id: String) -> Int32? { customerNumber(CustomerKey(id)) }

    /// The number of a grant of customer `c`.
    @inline(__always)
    func grantNumber(customer c: Int32, id: String, idHash: UInt64? = nil) -> Int32? {
        let hash = GrantKey.hash(customer: c, idHash: idHash ?? GrantKey.idHash(id))
        return grantIndex.find(hash) { grants[Int($0)].customer == c && grants[Int($0)].id == id }
    }

    /// The record of `currency` in customer `c`'s chain, added at the end of the chain when
    /// new. A customer has one or two currencies: the walk is a load or two.
    @inline(__always)
    private mutating func currencyRecord(customer c: Int32, currency: String) -> Int32 {
        if let found = findCurrency(customer: c, currency: currency) { return found }
        return addCurrency(customer: c, currency: currency)
    }

    /// The record of `currency` in customer `c`'s chain, nil if it has none.
    @inline(__always)
    func findCurrency(customer c: Int32, currency: String) -> Int32? {
        var r = customers[Int(c)].firstCurrency
        while r >= 0 {
            if currencies[Int(r)].currency == currency { return r }
            r = currencies[Int(r)].next
        }
        return nil
    }

    /// Appends a currency record to customer `c`'s chain: its slot number (what snapshots and
    /// views call it) is its position in the chain, so a new one goes last.
    mutating func addCurrency(customer c: Int32, currency: String) -> Int32 {
        let r = Int32(currencies.count)
        currencies.append(CurrencyRecord(currency: currency))
        var last = customers[Int(c)].firstCurrency
        if last < 0 {
            customers[Int(c)].firstCurrency = r
        } else {
            while currencies[Int(last)].next >= 0 { last = currencies[Int(last)].next }
            currencies[Int(last)].next = r
        }
        return r
    }

    private mutating func touch(_ c: Int32, _ r: Int32) {
        for i in 0..<touchedCount where touched[i].currency == r { return }
        if touchedCount < touched.count {
            touched[touchedCount] = (c, r)
        } else {
            touched.append((c, r))
        }
        touchedCount += 1
    }

    @discardableResult
    private mutating func write(
        _ type: EntryType, customer c: Int32, currency r: Int32, grant: String?, amount: Credits, source: String,
        timestamp: EventTime
    ) -> UInt64 {
        lastSeq += 1
        entries.append(
            LedgerEntry(
                seq: lastSeq, type: type, customer: customers[Int(c)].id,
                currency: currencies[Int(r)].currency, grant: grant, amount: amount, source: source,
                timestamp: timestamp, balance: currencies[Int(r)].available))
        // Only a currency with threshold levels, or flagged exhausted, can change its alert
        // state in `evaluateAlerts`. One flagged exhausted later in this message is not missed:
        // the flag is set only when nothing is available, which `evaluateAlerts` leaves alone.
        if !currencies[Int(r)].levels.isEmpty || currencies[Int(r)].exhausted { touch(c, r) }
        return lastSeq
    }

    // MARK: Grant lists

    /// SPEC §3.4: priority, then expires_at (none last), then effective_at, then apply order.
    /// Reads the two records in place (copying a record retains its strings and arrays).
    @inline(__always)
    func drawsBefore(_ ai: Int32, _ bi: Int32) -> Bool {
        let a = Int(ai)
        let b = Int(bi)
        if grants[a].priority != grants[b].priority { return grants[a].priority < grants[b].priority }
        if grants[a].expiresAtNanos != grants[b].expiresAtNanos { return grants[a].expiresAtNanos < grants[b].expiresAtNanos }
        if grants[a].effectiveNanos != grants[b].effectiveNanos { return grants[a].effectiveNanos < grants[b].effectiveNanos }
        return ai < bi
    }

    /// Links a new grant `g` (the partition's newest) into its customer's lists: all grants,
    /// the draw order and, if pending, the pending list.
    private mutating func link(_ g: Int32, customer c: Int32) {
        let ci = Int(c)
        grants[Int(g)].previousOfCustomer = customers[ci].lastGrant
        customers[ci].lastGrant = g
        // Customers have a few grants: one allocation for the first four.
        if customers[ci].drawOrder.isEmpty { customers[ci].drawOrder.reserveCapacity(4) }
        // The draw order is sorted, so "g draws before it" is false up to the place and true
        // after it: a binary search (a customer sent grant after grant has dozens of them).
        var position = customers[ci].drawOrder.count
        var low = 0
        while low < position {
            let middle = (low + position) / 2
            if drawsBefore(g, customers[ci].drawOrder[middle]) { position = middle } else { low = middle + 1 }
        }
        if position == customers[ci].drawOrder.count {
            customers[ci].drawOrder.append(g)
        } else {
            customers[ci].drawOrder.insert(g, at: position)
        }
        customers[ci].nextExpiry = min(customers[ci].nextExpiry, grants[Int(g)].expiresAtNanos)
        if grants[Int(g)].status == .pending {
            appendPending(g, customer: c)
            customers[ci].nextActivation = min(customers[ci].nextActivation, grants[Int(g)].effectiveNanos)
        }
    }

    /// Appends `g` at the end of customer `c`'s pending list (kept in apply order).
    mutating func appendPending(_ g: Int32, customer c: Int32) {
        var last = customers[Int(c)].firstPending
        if last < 0 {
            customers[Int(c)].firstPending = g
            return
        }
        while grants[Int(last)].nextPending >= 0 { last = grants[Int(last)].nextPending }
        grants[Int(last)].nextPending = g
    }

    /// Removes an expired or voided grant from its customer's draw order and pending list.
    private mutating func retire(_ g: Int32) {
        let c = Int(grants[Int(g)].customer)
        // A grant is in the draw order at most once: `remove(at:)` shifts the tail in place,
        // where `removeAll(where:)` went through the generic `replaceSubrange`.
        if let i = customers[c].drawOrder.firstIndex(of: g) { customers[c].drawOrder.remove(at: i) }
        var expiry = Int64.max
        for d in customers[c].drawOrder { expiry = min(expiry, grants[Int(d)].expiresAtNanos) }
        customers[c].nextExpiry = expiry
        // Every other grant of the list is still pending: this unlinks `g` if it was there.
        if unlinkNoLongerPending(customer: c) { refreshNextActivation(customer: c) }
    }

    /// Unlinks the grants of customer `c`'s pending list that are no longer pending (just
    /// activated, expired or voided), keeping the order of the rest; tells whether any was.
    private mutating func unlinkNoLongerPending(customer c: Int) -> Bool {
        var removed = false
        var previous: Int32 = -1
        var p = customers[c].firstPending
        while p >= 0 {
            let next = grants[Int(p)].nextPending
            if grants[Int(p)].status != .pending {
                if previous < 0 { customers[c].firstPending = next } else { grants[Int(previous)].nextPending = next }
                grants[Int(p)].nextPending = -1
                removed = true
            } else {
                previous = p
            }
            p = next
        }
        return removed
    }

    private mutating func refreshNextActivation(customer c: Int) {
        var activation = Int64.max
        var p = customers[c].firstPending
        while p >= 0 {
            activation = min(activation, grants[Int(p)].effectiveNanos)
            p = grants[Int(p)].nextPending
        }
        customers[c].nextActivation = activation
    }

    // MARK: Expiry and activation

    /// Expires, in (expires_at, apply order), every grant due at this point: the customer's
    /// own grants with `expires_at` ≤ its new watermark, and any grant of the partition with
    /// `expires_at` + grace ≤ the partition's new watermark (SPEC §3.2).
    private mutating func expireDue(customer c: Int32, customerWatermark: Int64, partitionWatermark pw: Int64) {
        if customers[Int(c)].nextExpiry <= customerWatermark {
            for g in customers[Int(c)].drawOrder where grants[Int(g)].expiresAtNanos <= customerWatermark {
                expiring.append(g)
            }
        }
        while let top = expiryQueue.peek, top.expiresAt <= pw &- config.expiryGrace {
            expiryQueue.pop()
            if !grants[Int(top.grant)].status.isTerminal, !expiring.contains(top.grant) { expiring.append(top.grant) }
        }
        guard !expiring.isEmpty else { return }
        if expiring.count > 1 {
            expiring.sort { grants[Int($0)].expiresAtNanos < grants[Int($1)].expiresAtNanos || (grants[Int($0)].expiresAtNanos == grants[Int($1)].expiresAtNanos && $0 < $1) }
        }
        for g in expiring { expire(g) }
        expiring.removeAll(keepingCapacity: true)
    }

    private mutating func expire(_ g: Int32) {
        // Fields are read one by one: copying the whole record retains its strings and arrays.
        let c = grants[Int(g)].customer
        let r = grants[Int(g)].currency
        let remaining = grants[Int(g)].remaining
        if grants[Int(g)].status == .active { currencies[Int(r)].available -= remaining }
        grants[Int(g)].status = .expired
        grants[Int(g)].remaining = .zero
        retire(g)
        if remaining.isPositive {
            let id = grants[Int(g)].id
            let expiresAt = grants[Int(g)].expiresAt!
            let seq = write(.expire, customer: c, currency: r, grant: id, amount: -remaining, source: id, timestamp: expiresAt)
            alerts.append(
                Alert(
                    kind: .grantExpired, customer: customers[Int(c)].id, currency: currencies[Int(r)].currency,
                    available: currencies[Int(r)].available, level: nil, grant: id, expired: remaining,
                    source: id, timestamp: expiresAt, seq: seq))
        }
    }

    /// Activates the customer's pending grants whose `effective_at` ≤ its watermark.
    private mutating func activateDue(customer c: Int32) {
        let ci = Int(c)
        let watermark = customers[ci].watermark
        guard customers[ci].nextActivation <= watermark else { return }
        // The engine's scratch, taken out while in use: no allocation per activation.
        var due: [Int32] = []
        swap(&due, &activating)
        defer {
            due.removeAll(keepingCapacity: true)
            swap(&due, &activating)
        }
        var p = customers[ci].firstPending
        while p >= 0 {
            if grants[Int(p)].effectiveNanos <= watermark { due.append(p) }
            p = grants[Int(p)].nextPending
        }
        due.sort { grants[Int($0)].effectiveNanos < grants[Int($1)].effectiveNanos || (grants[Int($0)].effectiveNanos == grants[Int($1)].effectiveNanos && $0 < $1) }
        for g in due {
            // Fields, not a copy of the record (its id, terms strings and meters would be retained).
            let r = grants[Int(g)].currency
            grants[Int(g)].status = .active
            currencies[Int(r)].available += grants[Int(g)].remaining
            let id = grants[Int(g)].id
            write(.activate, customer: c, currency: r, grant: id, amount: .zero, source: id, timestamp: grants[Int(g)].effectiveAt)
        }
        _ = unlinkNoLongerPending(customer: ci)
        refreshNextActivation(customer: ci)
    }

    // MARK: Messages

    private mutating func applyUsage(_ usage: Usage, customer c: Int32, message: Message) {
        let r = currencyRecord(customer: c, currency: usage.currency)
        var left = usage.cost
        guard left.isPositive else { return }
        let t = message.timestamp.nanos
        // The draw order is an array, not a chain through the grants: the grant numbers are
        // known up front, so the loads of several grants can be in flight together (a chain
        // made each wait for the one before; docs/benchmarks.md, "Flat customer state").
        for g in customers[Int(c)].drawOrder {
            let gi = Int(g)
            // Fields are read in place: copying a GrantRecord costs a handful of retains.
            guard grants[gi].currency == r, grants[gi].status == .active, grants[gi].remaining.isPositive,
                grants[gi].effectiveNanos <= t, !grants[gi].scoped || grants[gi].pays(for: usage.meter)
            else { continue }
            let drawn = min(grants[gi].remaining, left)
            grants[gi].remaining -= drawn
            currencies[Int(r)].available -= drawn
            left -= drawn
            write(.draw, customer: c, currency: r, grant: grants[gi].id, amount: -drawn, source: message.id, timestamp: message.timestamp)
            if left.isZero { return }
        }
        currencies[Int(r)].overage += left
        write(.overage, customer: c, currency: r, grant: nil, amount: left, source: message.id, timestamp: message.timestamp)
        if currencies[Int(r)].available.isZero, !currencies[Int(r)].exhausted {
            currencies[Int(r)].exhausted = true
            alerts.append(
                Alert(
                    kind: .balanceExhausted, customer: message.customer, currency: usage.currency, available: .zero, level: nil,
                    grant: nil, expired: nil, source: message.id, timestamp: message.timestamp, seq: lastSeq))
        }
    }

    private mutating func applyGrant(_ terms: GrantTerms, customer c: Int32, message: Message, idHash: UInt64) {
        let r = currencyRecord(customer: c, currency: terms.currency)
        let g = Int32(grants.count)
        let watermark = customers[Int(c)].watermark
        let effective = terms.effectiveAt.nanos <= watermark
        grants.append(
            GrantRecord(
                id: message.id, customer: c, currency: r, terms: terms, remaining: terms.amount,
                status: effective ? .active : .pending, contentHash: message.contentHash))
        grantIndex.insert(GrantKey.hash(customer: c, idHash: idHash), g)
        if effective { currencies[Int(r)].available += terms.amount }
        link(g, customer: c)
        write(.grant, customer: c, currency: r, grant: message.id, amount: terms.amount, source: message.id, timestamp: message.timestamp)
        guard let expiresAt = terms.expiresAt?.nanos else { return }
        // Already due: expire right after the grant itself (SPEC §3.2).
        if expiresAt <= watermark || expiresAt <= partitionWatermark &- config.expiryGrace {
            expire(g)
        } else {
            expiryQueue.push(MinHeap.Item(expiresAt: expiresAt, grant: g))
        }
    }

    private mutating func applyVoid(_ g: Int32, message: Message) {
        // Fields, not a copy of the record (its id, terms strings and meters would be retained).
        guard !grants[Int(g)].status.isTerminal else { return }  // voiding a voided or expired grant changes nothing
        let c = grants[Int(g)].customer
        let r = grants[Int(g)].currency
        let remaining = grants[Int(g)].remaining
        if grants[Int(g)].status == .active { currencies[Int(r)].available -= remaining }
        grants[Int(g)].status = .voided
        grants[Int(g)].remaining = .zero
        retire(g)
        // A spent grant has nothing left to remove: its status changes, no balance does.
        if remaining.isPositive {
            write(.void, customer: c, currency: r, grant: grants[Int(g)].id, amount: -remaining, source: message.id, timestamp: message.timestamp)
        }
    }

    // MARK: Alerts

    private mutating func evaluateAlerts(message: Message) {
        for i in 0..<touchedCount {
            let (c, r) = touched[i]
            if currencies[Int(r)].levels.isEmpty {
                // Written only when it changes (a write checks the array for uniqueness).
                if currencies[Int(r)].exhausted, currencies[Int(r)].available.isPositive {
                    currencies[Int(r)].exhausted = false
                }
                continue
            }
            // In place: a copy of the record shares its `armed` buffer, so flipping a level
            // copied the buffer, and writing the copy back released the old record.
            let ri = Int(r)
            let available = currencies[ri].available
            if available.isPositive, currencies[ri].exhausted { currencies[ri].exhausted = false }
            for i in 0..<currencies[ri].levels.count {
                let level = currencies[ri].levels[i]
                if currencies[ri].armed[i], available <= level {
                    currencies[ri].armed[i] = false
                    alerts.append(
                        Alert(
                            kind: .balanceLow, customer: customers[Int(c)].id, currency: currencies[ri].currency,
                            available: available, level: level, grant: nil, expired: nil, source: message.id,
                            timestamp: message.timestamp, seq: lastSeq))
                } else if !currencies[ri].armed[i], available > level {
                    currencies[ri].armed[i] = true
                }
            }
        }
    }
}

// MARK: - State records

/// A customer id with its stable hash computed once: dictionary lookups hash 8 bytes
/// instead of the string, and the idempotency fingerprint reuses the hash.
struct CustomerKey: Hashable, Sendable {
    static let seed: UInt64 = 0x1234_5678
    let id: String
    let hash: UInt64

    init(_ id: String) {
        self.id = id
        self.hash = StableHash.hash(id, seed: CustomerKey.seed)
    }

    init(id: String, hash: UInt64) {
        self.id = id
        self.hash = hash
    }


    static func == (a: CustomerKey, b: CustomerKey) -> Bool { a.hash == b.hash && a.id == b.id }
    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

/// How grants are indexed: by customer number and id.
enum GrantKey {
    static func hash(customer: Int32, id: String) -> UInt64 { hash(customer: customer, idHash: idHash(id)) }

    /// The part of the hash that depends on the id alone (a grant's is computed once per message).
    @inline(__always)
    static func idHash(_ id: String) -> UInt64 { StableHash.hash(id, seed: 0x6772_616e_7473) }

    @inline(__always)
    static func hash(customer: Int32, idHash: UInt64) -> UInt64 {
        StableHash.combine(idHash, UInt64(UInt32(bitPattern: customer)))
    }
}

enum GrantStatus: UInt8, Sendable {
    case pending, active, expired, voided

    /// Expired or voided. Asked of `grants[g].status`: the record has no such property, as one
    /// made the optimizer copy the whole record (retaining its strings) to read it.
    var isTerminal: Bool { self == .expired || self == .voided }
}

/// One grant. The fields a draw reads come first (with copies of `effective_at` and of
/// whether the grant is meter-scoped), so that a draw usually touches one cache line of it.
/// It also carries its customer's list links (grant numbers, -1 for none).
struct GrantRecord: Sendable {
    var remaining: Credits
    var customer: Int32
    /// The customer's currency record (an index into `PartitionEngine.currencies`).
    var currency: Int32
    /// `terms.effectiveAt.nanos`.
    let effectiveNanos: Int64
    /// `terms.expiresAt?.nanos`, `Int64.max` without an expiry.
    let expiresAtNanos: Int64
    /// `terms.priority`.
    let priority: Int
    var status: GrantStatus
    /// `terms.meters != nil`.
    let scoped: Bool
    /// The customer's grant applied before this one (the list of all its grants, newest first).
    var previousOfCustomer: Int32 = -1
    /// The next grant of the customer's pending list (in apply order).
    var nextPending: Int32 = -1
    var id: String
    var contentHash: UInt64
    let terms: GrantTerms

    init(
        id: String, customer: Int32, currency: Int32, terms: GrantTerms, remaining: Credits, status: GrantStatus,
        contentHash: UInt64
    ) {
        self.remaining = remaining
        self.customer = customer
        self.currency = currency
        self.effectiveNanos = terms.effectiveAt.nanos
        self.expiresAtNanos = terms.expiresAt?.nanos ?? Int64.max
        self.priority = terms.priority
        self.status = status
        self.scoped = terms.meters != nil
        self.id = id
        self.contentHash = contentHash
        self.terms = terms
    }

    var effectiveAt: EventTime { terms.effectiveAt }
    var expiresAt: EventTime? { terms.expiresAt }

    @inline(__always)
    func pays(for meter: String?) -> Bool {
        guard let scope = terms.meters else { return true }
        guard let meter else { return false }
        return scope.contains(meter)
    }
}

/// One currency of one customer. A customer's records form a chain through `next`, in the
/// order the currencies appeared: a record's position in it is its slot number.
struct CurrencyRecord: Sendable {
    var available: Credits = .zero
    var overage: Credits = .zero
    var currency: String
    var levels: [Credits] = []
    var armed: [Bool] = []
    /// The customer's next currency record, -1 for none.
    var next: Int32 = -1
    var exhausted = false

    init(currency: String) { self.currency = currency }

    /// A later threshold replaces the levels; each is armed while the balance is above it.
    mutating func setLevels(_ newLevels: [Credits]) {
        levels = newLevels
        armed = newLevels.map { available > $0 }
    }
}

/// One customer: 64 bytes, every field read by most messages. Its currencies, pending grants
/// and all its grants hang off it as chains through the engine's arrays (numbers, -1 for
/// none): customers have one or two currencies, and the grant chains are walked only when
/// a grant is added, activated, expired or voided, and for snapshots and views.
struct CustomerRecord: Sendable {
    var watermark: Int64 = Int64.min
    var nextExpiry: Int64 = Int64.max
    var nextActivation: Int64 = Int64.max
    /// Its first currency record (`CurrencyRecord.next` chains the rest).
    var firstCurrency: Int32 = -1
    /// The grants neither expired nor voided, in draw order. An array (its own buffer), unlike
    /// the other lists: usage walks it on every event, and a chain made each grant's load
    /// wait for the one before (docs/benchmarks.md, "Flat customer state").
    var drawOrder: [Int32] = []
    /// The first of its pending grants (`GrantRecord.nextPending`), in apply order.
    var firstPending: Int32 = -1
    /// Its newest grant (`GrantRecord.previousOfCustomer` chains back to the first).
    var lastGrant: Int32 = -1
    var id: String

    init(id: String) { self.id = id }
}

extension PartitionEngine {
    /// The numbers along a chain from `first`, `next` giving each one's successor (-1 ends it).
    private func chain(from first: Int32, _ next: (Int32) -> Int32) -> [Int32] {
        var list: [Int32] = []
        var n = first
        while n >= 0 {
            list.append(n)
            n = next(n)
        }
        return list
    }

    /// Customer `c`'s currency records in slot order.
    func currencyRecords(of c: Int) -> [Int32] { chain(from: customers[c].firstCurrency) { currencies[Int($0)].next } }

    /// Customer `c`'s grants in the order applied.
    func grantNumbers(of c: Int) -> [Int32] {
        chain(from: customers[c].lastGrant) { grants[Int($0)].previousOfCustomer }.reversed()
    }

    /// Customer `c`'s grants neither expired nor voided, in draw order.
    func drawOrder(of c: Int) -> [Int32] { customers[c].drawOrder }

    /// Customer `c`'s pending grants, in the order applied.
    func pendingGrants(of c: Int) -> [Int32] { chain(from: customers[c].firstPending) { grants[Int($0)].nextPending } }
}

/// A binary min-heap of grant expiries ordered by (expires_at, apply order).
struct MinHeap: Sendable {
    struct Item: Sendable {
        var expiresAt: Int64
        var grant: Int32

        static func < (a: Item, b: Item) -> Bool {
            a.expiresAt < b.expiresAt || (a.expiresAt == b.expiresAt && a.grant < b.grant)
        }
    }

    private(set) var items: [Item] = []

    var peek: Item? { items.first }

    /// Whether the earliest item expires at or before `limit`.
    @inline(__always)
    func hasItem(dueBy limit: Int64) -> Bool { items.first.map { $0.expiresAt <= limit } ?? false }

    /// Appends an item read from a snapshot; the array was a valid heap when written.
    mutating func append(_ item: Item) { items.append(item) }
    var count: Int { items.count }

    mutating func push(_ item: Item) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        // Sift `last` down from the root through a buffer (no per-step uniqueness or bounds
        // checks), moving each smaller child up instead of swapping.
        items.withUnsafeMutableBufferPointer { heap in
            let count = heap.count
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < count else { break }
                var child = left
                if left + 1 < count, heap[left + 1] < heap[left] { child = left + 1 }
                guard heap[child] < last else { break }
                heap[parent] = heap[child]
                parent = child
            }
            heap[parent] = last
        }
        return top
    }
}

// MARK: - Queries

/// A customer's balance in one currency, as of the last applied message.
public struct CurrencyBalance: Sendable, Equatable {
    public var currency: String
    public var available: Credits
    public var overage: Credits
}

extension PartitionEngine {
    /// The customer's balances, by currency in byte order; empty for an unknown customer.
    public func balances(customer: String) -> [CurrencyBalance] {
        guard let c = customerNumber(customer) else { return [] }
        return currencyRecords(of: Int(c))
            .map { CurrencyBalance(currency: currencies[Int($0)].currency, available: currencies[Int($0)].available, overage: currencies[Int($0)].overage) }
            .sorted { Array($0.currency.utf8).lexicographicallyPrecedes(Array($1.currency.utf8)) }
    }

    /// The customer's overage total in one currency; zero for an unknown customer or
    /// currency. The same figure as `balances(customer:)` gives, without building the list.
    public func overage(customer: String, currency: String) -> Credits {
        guard let c = customerNumber(customer), let r = findCurrency(customer: c, currency: currency) else { return .zero }
        return currencies[Int(r)].overage
    }

    /// Customer ids in the order they first appeared.
    public var customerIDs: [String] { customers.map(\.id) }
}
