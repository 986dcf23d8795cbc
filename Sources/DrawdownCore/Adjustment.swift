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
        let existing = findCurrency(customer: c, currency: currency)
        if let grantID = grant {
            guard let g = grantNumber(customer: c, id: grantID) else {
                return .failure(AdjustmentError("unknown grant \"\(grantID)\" of customer \"\(customer)\""))
            }
            guard let r = existing, grants[Int(g)].currency == r else {
                return .failure(AdjustmentError("grant \"\(grantID)\" is not in currency \"\(currency)\""))
            }
            guard !grants[Int(g)].status.isTerminal || amount.isZero else {
                return .failure(AdjustmentError("grant \"\(grantID)\" is expired or voided"))
            }
            guard !(grants[Int(g)].remaining + amount).isNegative else {
                return .failure(AdjustmentError("grant \"\(grantID)\" would go below zero"))
            }
            grants[Int(g)].remaining += amount
            if grants[Int(g)].status == .active { currencies[Int(r)].available += amount }
            rearm(currency: r)
            return .success(
                writeAdjustment(customer: c, currency: r, grant: grantID, amount: amount, source: source, timestamp: timestamp))
        }
        // A currency new to the customer has no overage: a negative amount fails before the
        // record is added, so a failure changes nothing.
        guard !((existing.map { currencies[Int($0)].overage } ?? .zero) + amount).isNegative else {
            return .failure(AdjustmentError("overage of \"\(customer)\" in \"\(currency)\" would go below zero"))
        }
        let r = existing ?? addCurrency(customer: c, currency: currency)
        currencies[Int(r)].overage += amount
        return .success(
            writeAdjustment(customer: c, currency: r, grant: nil, amount: amount, source: source, timestamp: timestamp))
    }

    private mutating func rearm(currency r: Int32) {
        var slot = currencies[Int(r)]
        if slot.available.isPositive { slot.exhausted = false }
        slot.armed = slot.levels.map { slot.available > $0 }
        currencies[Int(r)] = slot
    }

    private mutating func writeAdjustment(
        customer c: Int32, currency r: Int32, grant: String?, amount: Credits, source: String, timestamp: EventTime
    ) -> UInt64 {
        lastSeq += 1
        let slot = currencies[Int(r)]
        entries.append(
            LedgerEntry(
                seq: lastSeq, type: .adjust, customer: customers[Int(c)].id, currency: slot.currency, grant: grant,
                amount: amount, source: source, timestamp: timestamp, balance: slot.available))
        return lastSeq
    }
}
