import DrawdownCore

/// What applying a workload costs at the least with the engine's data sizes: the memory an
/// apply must touch, and almost nothing else. It is not an engine and checks no rule of
/// SPEC §3; it is the floor that the apply stage is measured against (docs/benchmarks.md,
/// "Apply against its floor").
///
/// Per event, as the engine does it: the customer found through the engine's `HashIndex` and
/// confirmed against its 64-byte record; the idempotency key looked up and then
/// remembered in the engine's own `DedupeTable` (32-byte slots, grown and swept the same
/// way); for usage, a walk of the customer's grants drawing the cost down, one 64-byte
/// entry written per draw or overage; for a grant, a 64-byte record appended, indexed by its
/// id and linked first in its customer's chain (no ordering), and an entry written. Every
/// id is a precomputed hash, amounts are `Int128` nano-units, and nothing is allocated per
/// event. Groups of events are warmed phase by phase as `PartitionEngine.warm` does, so
/// that the floor overlaps its cache misses as much as the engine does.
public enum ApplyFloor {
    /// One message reduced to what the floor reads, computed before the clock starts.
    public struct Event: Sendable {
        var customerHash: UInt64
        var key: KeyFingerprint
        var timestamp: Int64
        var contentHash: UInt64
        /// Usage: the cost; grant: the amount; others: 0.
        var amount: Int128
        var kind: Kind
        /// A grant's id hash.
        var grantHash: UInt64
    }

    enum Kind: UInt8, Sendable { case usage, grant, other }

    struct Customer {
        var idHash: UInt64
        var watermark: Int64 = Int64.min
        var available: Int128 = 0
        var overage: Int128 = 0
        var firstGrant: Int32 = -1
        var grants: Int32 = 0
        var padding: UInt64 = 0
    }

    struct Grant {
        var remaining: Int128
        var idHash: UInt64
        var customer: Int32
        var next: Int32
        var effective: Int64
        var expires: Int64
        var priority: Int64
        var padding: UInt64 = 0
    }

    struct Entry {
        var amount: Int128
        var balance: Int128
        var seq: UInt64
        var timestamp: Int64
        var customer: Int32
        var grant: Int32
        var kind: UInt8
    }

    public static func events(_ messages: [Message]) -> [Event] {
        messages.map { message in
            var kind = Kind.other
            var amount: Int128 = 0
            switch message.body {
            case .usage(let usage):
                kind = .usage
                amount = usage.cost.nanos
            case .grant(let terms):
                kind = .grant
                amount = terms.amount.nanos
            case .void, .threshold: break
            }
            return Event(
                customerHash: StableHash.hash(message.customer, seed: 0x1234_5678),
                key: KeyFingerprint(customer: message.customer, id: message.id), timestamp: message.timestamp.nanos,
                contentHash: message.contentHash, amount: amount, kind: kind,
                grantHash: StableHash.hash(message.id, seed: 0x6772_616e_7473))
        }
    }

    /// The floor's state; `run` applies events to it.
    public struct State {
        var customerIndex = HashIndex()
        var customers: [Customer] = []
        var grantIndex = HashIndex()
        var grants: [Grant] = []
        var dedupe = DedupeTable()
        var entries: [Entry] = []
        var seq: UInt64 = 0
        var sink: UInt64 = 0
        public var applied = 0

        public init() {
            entries.reserveCapacity(4096)
        }
    }

    /// Applies `events`, warming each group of `group` first; entries are dropped every
    /// `EngineStages.batchMessages` events. Returns how many were applied (not duplicates).
    public static func run(_ events: [Event], group: Int, state s: inout State) -> Int {
        let group = min(max(1, group), 8)
        let window: Int64 = 24 * 3_600 * 1_000_000_000
        var start = 0
        var inBatch = 0
        while start < events.count {
            let end = min(start + group, events.count)
            if group > 1 { warm(events[start..<end], &s) }
            for i in start..<end {
                apply(events[i], window: window, &s)
                inBatch += 1
                if inBatch == EngineStages.batchMessages {
                    s.entries.removeAll(keepingCapacity: true)
                    inBatch = 0
                }
            }
            start = end
        }
        return s.applied
    }

    static func warm(_ events: ArraySlice<Event>, _ s: inout State) {
        var sink = s.sink
        for e in events {
            sink &+= s.customerIndex.touch(e.customerHash) &+ (s.dedupe.lookup(e.key)?.contentHash ?? 0)
        }
        var first: (Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) = (-1, -1, -1, -1, -1, -1, -1, -1)
        withUnsafeMutableBytes(of: &first) { raw in
            let numbers = raw.bindMemory(to: Int32.self)
            for (n, e) in zip(0..<8, events) {
                if let c = s.customerIndex.find(e.customerHash, { _ in true }) { numbers[n] = s.customers[Int(c)].firstGrant }
            }
            for n in 0..<8 where numbers[n] >= 0 { sink &+= UInt64(truncatingIfNeeded: s.grants[Int(numbers[n])].remaining) }
        }
        s.sink = sink
    }

    @inline(__always)
    static func apply(_ e: Event, window: Int64, _ s: inout State) {
        let found = s.customerIndex.find(e.customerHash) { s.customers[Int($0)].idHash == e.customerHash }
        let c: Int32
        if let found {
            c = found
            let watermark = s.customers[Int(c)].watermark
            if e.timestamp < watermark &- window { return }
            if let remembered = s.dedupe.lookup(e.key), remembered.timestamp >= watermark &- window { return }
        } else {
            c = Int32(s.customers.count)
            s.customers.append(Customer(idHash: e.customerHash))
            s.customerIndex.insert(e.customerHash, c)
        }
        let ci = Int(c)
        s.customers[ci].watermark = max(s.customers[ci].watermark, e.timestamp)
        switch e.kind {
        case .usage:
            var left = e.amount
            guard left > 0 else { break }
            var g = s.customers[ci].firstGrant
            while g >= 0 {
                let gi = Int(g)
                if s.grants[gi].remaining > 0, s.grants[gi].effective <= e.timestamp {
                    let drawn = min(s.grants[gi].remaining, left)
                    s.grants[gi].remaining -= drawn
                    s.customers[ci].available -= drawn
                    left -= drawn
                    write(kind: 1, customer: c, grant: g, amount: -drawn, timestamp: e.timestamp, &s)
                    if left == 0 { break }
                }
                g = s.grants[gi].next
            }
            if left > 0 {
                s.customers[ci].overage += left
                write(kind: 2, customer: c, grant: -1, amount: left, timestamp: e.timestamp, &s)
            }
        case .grant:
            let g = Int32(s.grants.count)
            s.grants.append(
                Grant(
                    remaining: e.amount, idHash: e.grantHash, customer: c, next: s.customers[ci].firstGrant,
                    effective: e.timestamp, expires: Int64.max, priority: 100))
            s.grantIndex.insert(e.grantHash &+ UInt64(UInt32(c)), g)
            s.customers[ci].firstGrant = g
            s.customers[ci].grants += 1
            s.customers[ci].available += e.amount
            write(kind: 0, customer: c, grant: g, amount: e.amount, timestamp: e.timestamp, &s)
        case .other:
            break
        }
        s.dedupe.remember(e.key, customer: ci, timestamp: e.timestamp, contentHash: e.contentHash) { _, _ in false }
        s.applied += 1
    }

    @inline(__always)
    static func write(kind: UInt8, customer: Int32, grant: Int32, amount: Int128, timestamp: Int64, _ s: inout State) {
        s.seq += 1
        s.entries.append(
            Entry(
                amount: amount, balance: s.customers[Int(customer)].available, seq: s.seq, timestamp: timestamp,
                customer: customer, grant: grant, kind: kind))
    }
}
