/// Why a correction cannot be applied to the engine.
public struct AdjustmentError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension PartitionEngine {
    /// Applies one correction written by a re-rating replay (SPEC §5 `adjust`; history is
    /// never rewritten): `amount` is added to the grant's remaining amount (and to the
    /// available balance when the grant is active), or, with no grant, to the customer's
    /// overage. Writes one `adjust` entry with the next sequence number and returns it.
    ///
    /// An adjustment moves no watermark, remembers no idempotency key, counts as no applied
    /// message and raises no alert; threshold levels and the exhausted flag are re-armed
    /// silently to match the new balance. It fails, changing nothing, for an unknown
    /// customer or grant, a grant of another currency, a change to an expired or voided
    /// grant, or a result below zero.
    @discardableResult
    public mutating func adjust(
        customer: String, currency: String, grant: String?, amount: Credits, source: String, timestamp: EventTime
    ) -> Result<UInt64, AdjustmentError> {
        guard let c = customerNumber(customer) else {
            return .failure(AdjustmentError("unknown customer \"\(customer)\""))
        }
        let existingSlot = customers[Int(c)].currencies.firstIndex { $0.currency == currency }
        if let grantID = grant {
            guard let g = grantNumber(customer: c, id: grantID) else {
                return .failure(AdjustmentError("unknown grant \"\(grantID)\" of customer \"\(customer)\""))
            }
            let record = grants[Int(g)]
            guard let k = existingSlot, record.currencySlot == Int32(k) else {
                return .failure(AdjustmentError("grant \"\(grantID)\" is not in currency \"\(currency)\""))
            }
            guard !record.isTerminal || amount.isZero else {
                return .failure(AdjustmentError("grant \"\(grantID)\" is expired or voided"))
            }
            guard !(record.remaining + amount).isNegative else {
                return .failure(AdjustmentError("grant \"\(grantID)\" would go below zero"))
            }
            grants[Int(g)].remaining += amount
            if record.status == .active { customers[Int(c)].currencies[k].available += amount }
            rearm(customer: c, currency: Int32(k))
            return .success(
                writeAdjustment(customer: c, currency: Int32(k), grant: grantID, amount: amount, source: source, timestamp: timestamp))
        }
        let k: Int
        if let existingSlot {
            k = existingSlot
        } else {
            k = customers[Int(c)].currencies.count
            customers[Int(c)].currencies.append(CurrencyRecord(currency: currency))
        }
        guard !(customers[Int(c)].currencies[k].overage + amount).isNegative else {
            if existingSlot == nil { customers[Int(c)].currencies.removeLast() }
            return .failure(AdjustmentError("overage of \"\(customer)\" in \"\(currency)\" would go below zero"))
        }
        customers[Int(c)].currencies[k].overage += amount
        return .success(
            writeAdjustment(customer: c, currency: Int32(k), grant: nil, amount: amount, source: source, timestamp: timestamp))
    }

    private mutating func rearm(customer c: Int32, currency k: Int32) {
        var slot = customers[Int(c)].currencies[Int(k)]
        if slot.available.isPositive { slot.exhausted = false }
        slot.armed = slot.levels.map { slot.available > $0 }
        customers[Int(c)].currencies[Int(k)] = slot
    }

    private mutating func writeAdjustment(
        customer c: Int32, currency k: Int32, grant: String?, amount: Credits, source: String, timestamp: EventTime
    ) -> UInt64 {
        lastSeq += 1
        let slot = customers[Int(c)].currencies[Int(k)]
        entries.append(
            LedgerEntry(
                seq: lastSeq, type: .adjust, customer: customers[Int(c)].id, currency: slot.currency, grant: grant,
                amount: amount, source: source, timestamp: timestamp, balance: slot.available))
        return lastSeq
    }
}
