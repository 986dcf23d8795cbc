/// One customer's balances and grants, as the balance API shows them (SPEC §7 state, plus
/// each grant's terms). A read-only copy: taking it never changes the engine.
public struct CustomerView: Sendable, Equatable {
    public struct Grant: Sendable, Equatable {
        public var id: String
        public var remaining: Credits
        public var priority: Int
        public var category: String
        public var effectiveAt: EventTime
        public var expiresAt: EventTime?
        /// `active`, `pending`, `expired`, `voided` or `spent` (SPEC §7).
        public var status: String
        /// Meters the grant pays for; nil: every meter.
        public var meters: [String]?
    }

    public struct Currency: Sendable, Equatable {
        public var currency: String
        public var available: Credits
        public var overage: Credits
        /// Grants in this currency, ids in byte order.
        public var grants: [Grant]
    }

    public var customer: String
    public var partition: Int32
    /// Currencies in byte order.
    public var currencies: [Currency]
}

extension PartitionEngine {
    /// The customer's balances and grants as of the last applied message; nil for a customer
    /// this partition has never seen.
    public func customerView(_ customer: String) -> CustomerView? {
        guard let c = customerNumber(customer) else { return nil }
        return customerView(at: Int(c))
    }

    /// Views of every customer, in the order they first appeared.
    public func allCustomerViews() -> [CustomerView] {
        customers.indices.map { customerView(at: $0) }
    }

    func customerView(at index: Int) -> CustomerView {
        let all = grantNumbers(of: index)
        var currencies: [CustomerView.Currency] = []
        for r in currencyRecords(of: index) {
            let slot = self.currencies[Int(r)]
            let grants = all.lazy.map { self.grants[Int($0)] }.filter { $0.currency == r }
                .map {
                    CustomerView.Grant(
                        id: $0.id, remaining: $0.remaining, priority: $0.terms.priority, category: $0.terms.category, effectiveAt: $0.effectiveAt,
                        expiresAt: $0.expiresAt, status: $0.statusName, meters: $0.terms.meters)
                }
                .sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
            currencies.append(
                CustomerView.Currency(currency: slot.currency, available: slot.available, overage: slot.overage, grants: grants))
        }
        currencies.sort { $0.currency.utf8.lexicographicallyPrecedes($1.currency.utf8) }
        return CustomerView(customer: customers[index].id, partition: partition, currencies: currencies)
    }
}
