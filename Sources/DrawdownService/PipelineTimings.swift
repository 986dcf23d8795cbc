/// Consume → durable and consume → delivered latency, weighted by records, from the
/// per-hand-off timestamps (one clock read per hand-off per shard, never per record).
///
/// A record's "consumed" time is when the poll thread handed its poll's records to the
/// shard; "durable" is when its ledger batch's fdatasync returned; "delivered" is when the
/// last output of its batch had a successful delivery report (the batch's outputs are
/// confirmed together, so this is the time the balance changes of that record are known
/// delivered).
public struct LatencyFigures: Sendable, CustomStringConvertible {
    /// (latency in nanoseconds, records) samples.
    private var samples: [(nanos: UInt64, count: Int)] = []

    public init() {}

    mutating func add(_ handOffs: [HandOff], at nanos: UInt64) {
        for h in handOffs where h.count > 0 { samples.append((nanos >= h.nanos ? nanos - h.nanos : 0, h.count)) }
    }

    public mutating func merge(_ other: LatencyFigures) { samples.append(contentsOf: other.samples) }

    /// Records measured.
    public var count: Int { samples.reduce(0) { $0 + $1.count } }

    /// The latency in seconds below which `fraction` of the records fall (nil: no record).
    public func quantile(_ fraction: Double) -> Double? {
        let total = count
        guard total > 0 else { return nil }
        let sorted = samples.sorted { $0.nanos < $1.nanos }
        let rank = max(1, Int((Double(total) * fraction).rounded(.up)))
        var seen = 0
        for s in sorted {
            seen += s.count
            if seen >= rank { return Double(s.nanos) / 1e9 }
        }
        return Double(sorted.last!.nanos) / 1e9
    }

    public var description: String {
        func ms(_ q: Double) -> String {
            guard let v = quantile(q) else { return "-" }
            return String(Int((v * 1e3).rounded())) + " ms"
        }
        return "p50 \(ms(0.5)), p99 \(ms(0.99)), max \(ms(1.0))"
    }
}
