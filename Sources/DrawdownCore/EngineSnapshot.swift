/// Snapshots of engine state: everything a `PartitionEngine` holds between messages, in
/// a deterministic binary form. Output buffers (`entries`, `alerts`) are not part of it:
/// take a snapshot at a batch boundary, after `takeOutput()`.
extension PartitionEngine {
    static let snapshotVersion: UInt8 = 1

    public func snapshot() -> [UInt8] {
        precondition(entries.isEmpty && alerts.isEmpty, "snapshot between batches, after takeOutput()")
        var w = BinaryWriter(capacity: 1 << 16)
        w.byte(PartitionEngine.snapshotVersion)
        w.signed(Int64(partition))
        w.signed(partitionWatermark)
        w.varint(lastSeq)
        w.varint(applied)
        w.varint(duplicates)
        w.varint(rejected)

        // The lists and slot numbers are those the per-customer arrays had before the engine
        // kept them as chains (docs/engine.md, "State layout"): the format is unchanged.
        w.varint(customers.count)
        // A currency record's slot number: its position in its customer's chain.
        var slotOf = [Int32](repeating: 0, count: currencies.count)
        for c in customers.indices {
            let grantList = grantNumbers(of: c)
            let drawList = drawOrder(of: c)
            w.string(customers[c].id)
            w.signed(customers[c].watermark)
            for list in [grantList, drawList, drawList.sorted(), pendingGrants(of: c)] {
                w.varint(list.count)
                for g in list { w.varint(Int(g)) }
            }
            w.signed(customers[c].nextExpiry)
            w.signed(customers[c].nextActivation)
            let records = currencyRecords(of: c)
            w.varint(records.count)
            for (k, r) in records.enumerated() {
                slotOf[Int(r)] = Int32(k)
                let slot = currencies[Int(r)]
                w.string(slot.currency)
                w.credits(slot.available)
                w.credits(slot.overage)
                w.varint(slot.levels.count)
                for (level, armed) in zip(slot.levels, slot.armed) {
                    w.credits(level)
                    w.byte(armed ? 1 : 0)
                }
                w.byte(slot.exhausted ? 1 : 0)
            }
        }

        w.varint(grants.count)
        for grant in grants {
            w.string(grant.id)
            w.varint(Int(grant.customer))
            w.varint(Int(slotOf[Int(grant.currency)]))
            let terms = grant.terms
            w.credits(terms.amount)
            w.string(terms.currency)
            w.varint(terms.priority)
            w.string(terms.category)
            w.eventTime(terms.effectiveAt)
            if let expiresAt = terms.expiresAt {
                w.byte(1)
                w.eventTime(expiresAt)
            } else {
                w.byte(0)
            }
            if let meters = terms.meters {
                w.byte(1)
                w.varint(meters.count)
                for meter in meters { w.string(meter) }
            } else {
                w.byte(0)
            }
            w.credits(grant.remaining)
            w.byte(grant.status.rawValue)
            w.uint64(grant.contentHash)
        }

        w.varint(expiryQueue.items.count)
        for item in expiryQueue.items {
            w.signed(item.expiresAt)
            w.varint(Int(item.grant))
        }

        w.varint(dedupe.capacity)
        w.varint(dedupe.count)
        // Sorted by fingerprint, so equal contents encode equally whatever the slot layout.
        var keys: [(KeyFingerprint, Int, DedupeTable.Remembered)] = []
        keys.reserveCapacity(dedupe.count)
        dedupe.forEach { keys.append(($0, $1, $2)) }
        keys.sort { ($0.0.low, $0.0.high) < ($1.0.low, $1.0.high) }
        for (key, customer, remembered) in keys {
            w.uint64(key.low)
            w.uint64(key.high)
            w.varint(customer)
            w.signed(remembered.timestamp)
            w.uint64(remembered.contentHash)
        }
        return w.bytes
    }

    public init(snapshot bytes: [UInt8], config: EngineConfig = EngineConfig()) throws(BinaryReader.Damaged) {
        var r = BinaryReader(bytes)
        guard try r.byte() == PartitionEngine.snapshotVersion else {
            throw BinaryReader.Damaged(description: "unknown engine snapshot version")
        }
        let partitionValue = try r.signed()
        guard let partition = Int32(exactly: partitionValue) else { throw BinaryReader.Damaged(description: "bad partition") }
        self.init(partition: partition, config: config)
        partitionWatermark = try r.signed()
        lastSeq = try r.varint()
        applied = try r.varint()
        duplicates = try r.varint()
        rejected = try r.varint()

        let customerCount = try r.count()
        customers.reserveCapacity(customerCount)
        // The customers' grant lists name grants read later: kept as (customer, list, grant)
        // until the grants are there to link. List 2, the live set in apply order, is the
        // draw order sorted, so not kept.
        var listed: [(customer: Int32, list: Int, grant: Int32)] = []
        for index in 0..<customerCount {
            var customer = CustomerRecord(id: try r.string())
            customer.watermark = try r.signed()
            for list in 0..<4 {
                for _ in 0..<(try r.count()) {
                    let g = Int32(try r.count(max: Int(Int32.max)))
                    if list != 2 { listed.append((Int32(index), list, g)) }
                }
            }
            customer.nextExpiry = try r.signed()
            customer.nextActivation = try r.signed()
            customers.append(customer)
            for _ in 0..<(try r.count()) {
                var slot = CurrencyRecord(currency: try r.string())
                slot.available = try r.credits()
                slot.overage = try r.credits()
                for _ in 0..<(try r.count()) {
                    slot.levels.append(try r.credits())
                    slot.armed.append(try r.byte() != 0)
                }
                slot.exhausted = try r.byte() != 0
                let record = addCurrency(customer: Int32(index), currency: slot.currency)
                slot.next = -1
                currencies[Int(record)] = slot
            }
            customerIndex.insert(CustomerKey(customers[index].id).hash, Int32(index))
        }

        let grantCount = try r.count()
        grants.reserveCapacity(grantCount)
        for index in 0..<grantCount {
            let id = try r.string()
            let customer = Int32(try r.count(max: customers.count - 1))
            // The slot is a position in the customer's currency chain.
            var currency = customers[Int(customer)].firstCurrency
            var slot = try r.count(max: Int(Int32.max))
            while slot > 0, currency >= 0 {
                currency = currencies[Int(currency)].next
                slot -= 1
            }
            guard currency >= 0 else { throw BinaryReader.Damaged(description: "a grant's currency slot its customer does not have") }
            var terms = GrantTerms(
                amount: try r.credits(), currency: try r.string(), priority: try r.count(max: MessageLimits.priorityMax),
                category: try r.string(), effectiveAt: try r.eventTime())
            if try r.byte() != 0 { terms.expiresAt = try r.eventTime() }
            if try r.byte() != 0 {
                var meters: [String] = []
                for _ in 0..<(try r.count()) { meters.append(try r.string()) }
                terms.meters = meters
            }
            let remaining = try r.credits()
            guard let status = GrantStatus(rawValue: try r.byte()) else { throw BinaryReader.Damaged(description: "bad grant status") }
            let record = GrantRecord(
                id: id, customer: customer, currency: currency, terms: terms, remaining: remaining, status: status,
                contentHash: try r.uint64())
            grantIndex.insert(GrantKey.hash(customer: customer, id: id), Int32(index))
            grants.append(record)
        }

        // Each list is linked in the order written (appended at its end). A grant listed twice
        // would make a cycle, so that is refused (apply order is ascending numbers).
        for (c, list, g) in listed {
            guard Int(g) < grants.count, grants[Int(g)].customer == c else {
                throw BinaryReader.Damaged(description: "a customer's grant list names another's grant")
            }
            let ci = Int(c)
            switch list {
            case 0:
                guard g > customers[ci].lastGrant else { throw BinaryReader.Damaged(description: "grants out of apply order") }
                grants[Int(g)].previousOfCustomer = customers[ci].lastGrant
                customers[ci].lastGrant = g
            case 1:
                customers[ci].drawOrder.append(g)
            default:
                guard !pendingGrants(of: ci).contains(g) else { throw BinaryReader.Damaged(description: "a grant twice in a pending list") }
                appendPending(g, customer: c)
            }
        }

        for _ in 0..<(try r.count()) {
            let expiresAt = try r.signed()
            expiryQueue.append(MinHeap.Item(expiresAt: expiresAt, grant: Int32(try r.count(max: max(grants.count - 1, 0)))))
        }

        dedupe = DedupeTable(capacity: try r.count())
        for _ in 0..<(try r.count()) {
            let key = KeyFingerprint(low: try r.uint64(), high: try r.uint64())
            let customer = try r.count(max: max(customers.count - 1, 0))
            dedupe.restore(
                key, customer: customer,
                remembered: DedupeTable.Remembered(timestamp: try r.signed(), contentHash: try r.uint64()))
        }
        guard r.isAtEnd else { throw BinaryReader.Damaged(description: "bytes after the engine snapshot") }
    }
}

/// The state of several partitions in one snapshot (what the processor writes).
public enum EngineSnapshots {
    public static func encode(_ engines: [PartitionEngine]) -> [UInt8] {
        var w = BinaryWriter()
        w.byte(1)
        w.varint(engines.count)
        for engine in engines.sorted(by: { $0.partition < $1.partition }) { w.data(engine.snapshot()) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], config: EngineConfig) throws(BinaryReader.Damaged) -> [PartitionEngine] {
        var r = BinaryReader(bytes)
        guard try r.byte() == 1 else { throw BinaryReader.Damaged(description: "unknown snapshot set version") }
        var engines: [PartitionEngine] = []
        for _ in 0..<(try r.count()) { engines.append(try PartitionEngine(snapshot: Array(try r.data()), config: config)) }
        guard r.isAtEnd else { throw BinaryReader.Damaged(description: "bytes after the snapshot set") }
        return engines
    }
}
