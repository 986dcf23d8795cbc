import Foundation

/// Reads JSON lines / documents with Foundation (tests only) and compares ledgers the way
/// the worked example asks: amounts as decimals, `expire`/`activate` timestamps as instants.
public enum LedgerComparison {
    public static func jsonLines(_ data: Data) throws -> [[String: Any]] {
        try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// Decimal text normalised: `"1.50"` → `"1.5"`, `"-0"` → `"0"`.
    public static func decimal(_ text: String) -> String {
        var s = text
        var negative = false
        if s.hasPrefix("-") {
            negative = true
            s.removeFirst()
        }
        var parts = s.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var whole = String(parts[0].drop { $0 == "0" })
        if whole.isEmpty { whole = "0" }
        var fraction = parts.count > 1 ? parts[1] : ""
        while fraction.hasSuffix("0") { fraction.removeLast() }
        parts = fraction.isEmpty ? [whole] : [whole, fraction]
        let joined = parts.joined(separator: ".")
        return negative && joined != "0" ? "-" + joined : joined
    }

    /// An RFC 3339 timestamp as (seconds, nanoseconds) since the epoch.
    public static func instant(_ text: String) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let upper = text.uppercased()
        var base = upper
        var fraction = "0"
        if let dot = upper.firstIndex(of: ".") {
            var end = upper.index(after: dot)
            while end < upper.endIndex, upper[end].isNumber { end = upper.index(after: end) }
            fraction = String(upper[upper.index(after: dot)..<end])
            base = String(upper[..<dot]) + String(upper[end...])
        }
        formatter.formatOptions = [.withInternetDateTime]
        let seconds = formatter.date(from: base).map { Int($0.timeIntervalSince1970) } ?? Int.min
        let nanos = Int((fraction + "000000000").prefix(9)) ?? 0
        return "\(seconds).\(nanos)"
    }

    /// A ledger entry reduced to comparable text.
    public static func normalized(_ entry: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for (key, value) in entry where key != "partition" {
            out[key] = "\(value)"
        }
        out["amount"] = decimal(out["amount"] ?? "")
        out["balance"] = decimal(out["balance"] ?? "")
        if let type = out["type"], type == "expire" || type == "activate", let ts = out["timestamp"] {
            out["timestamp"] = instant(ts)
        }
        return out
    }

    /// The state document reduced to comparable text.
    public static func normalizedState(_ data: Data) throws -> [String: String] {
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var out: [String: String] = [:]
        for key in ["applied", "duplicates", "rejected"] { out[key] = "\(root[key] ?? "absent")" }
        let customers = root["customers"] as? [String: [String: [String: Any]]] ?? [:]
        for (customer, currencies) in customers {
            for (currency, balance) in currencies {
                let prefix = "\(customer)/\(currency)"
                out[prefix + "/available"] = decimal("\(balance["available"]!)")
                out[prefix + "/overage"] = decimal("\(balance["overage"]!)")
                for (grant, detail) in balance["grants"] as? [String: [String: String]] ?? [:] {
                    out[prefix + "/" + grant] = decimal(detail["remaining"]!) + " " + detail["status"]!
                }
            }
        }
        return out
    }
}

/// The worked example of `shared/examples`, vendored under `Tests/Fixtures/worked-example`.
public enum WorkedExample {
    public static var directory: URL { repositoryRootURL().appendingPathComponent("Tests/Fixtures/worked-example") }
    public static func file(_ name: String) throws -> Data { try Data(contentsOf: directory.appendingPathComponent(name)) }
}
