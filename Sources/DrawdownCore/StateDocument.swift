/// The state document of SPEC §7: final balances per customer and currency, every grant
/// with its remaining amount and status, and the message counters.
public enum StateDocument {
    /// Renders the state of one or more partitions (customers never span partitions).
    /// Keys are sorted bytewise so the document is stable.
    public static func render(_ engines: [PartitionEngine]) -> [UInt8] {
        var out: [UInt8] = []
        var rows: [(String, PartitionEngine, Int)] = []
        var applied: UInt64 = 0, duplicates: UInt64 = 0, rejected: UInt64 = 0
        for engine in engines {
            applied += engine.applied
            duplicates += engine.duplicates
            rejected += engine.rejected
            for (index, customer) in engine.customers.enumerated() { rows.append((customer.id, engine, index)) }
        }
        rows.sort { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
        out.append(contentsOf: #"{"customers":{"#.utf8)
        for (row, (id, engine, index)) in rows.enumerated() {
            if row > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(id, to: &out)
            out.append(UInt8(ascii: ":"))
            engine.appendCustomerJSON(index, to: &out)
        }
        out.append(contentsOf: #"},"applied":"#.utf8)
        appendInteger(Int64(applied), to: &out)
        out.append(contentsOf: #","duplicates":"#.utf8)
        appendInteger(Int64(duplicates), to: &out)
        out.append(contentsOf: #","rejected":"#.utf8)
        appendInteger(Int64(rejected), to: &out)
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}

extension PartitionEngine {
    /// `{"credits": {"available": "…", "overage": "…", "grants": {"g1": {"remaining": "…", "status": "…"}}}}`
    func appendCustomerJSON(_ index: Int, to out: inout [UInt8]) {
        let records = currencyRecords(of: index)
        let order = records.sorted {
            Array(currencies[Int($0)].currency.utf8).lexicographicallyPrecedes(Array(currencies[Int($1)].currency.utf8))
        }
        let all = grantNumbers(of: index)
        out.append(UInt8(ascii: "{"))
        for (n, r) in order.enumerated() {
            let slot = currencies[Int(r)]
            if n > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(slot.currency, to: &out)
            out.append(contentsOf: #":{"available":"#.utf8)
            JSONWriter.appendAmount(slot.available, to: &out)
            out.append(contentsOf: #","overage":"#.utf8)
            JSONWriter.appendAmount(slot.overage, to: &out)
            out.append(contentsOf: #","grants":{"#.utf8)
            let ids = all.filter { grants[Int($0)].currency == r }
                .sorted { Array(grants[Int($0)].id.utf8).lexicographicallyPrecedes(Array(grants[Int($1)].id.utf8)) }
            for (m, g) in ids.enumerated() {
                let grant = grants[Int(g)]
                if m > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(grant.id, to: &out)
                out.append(contentsOf: #":{"remaining":"#.utf8)
                JSONWriter.appendAmount(grant.remaining, to: &out)
                out.append(contentsOf: #","status":""#.utf8)
                out.append(contentsOf: grant.statusName.utf8)
                out.append(contentsOf: #""}"#.utf8)
            }
            out.append(contentsOf: "}}".utf8)
        }
        out.append(UInt8(ascii: "}"))
    }
}

extension GrantRecord {
    /// SPEC §7: `voided` and `expired` win over `spent`.
    var statusName: String {
        switch status {
        case .voided: "voided"
        case .expired: "expired"
        case .pending: "pending"
        case .active: remaining.isZero ? "spent" : "active"
        }
    }
}
