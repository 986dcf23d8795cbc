import DrawdownCore
import DrawdownKafka

/// Produces generated records to the dev broker, as every end-to-end test needs.
public enum WorkloadProducer {
    public struct NotDelivered: Error, CustomStringConvertible {
        public var description: String
    }

    /// Produces `records` to `topic` in order, keyed by customer (murmur2, SPEC §5); records
    /// without a customer (malformed ones) go without a key. Waits out a full queue; throws on
    /// any other send error and unless every record is delivered.
    public static func produce(_ records: [(bytes: [UInt8], record: WorkloadRecord)], topic: String, bootstrap: String) throws {
        let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
        var failed = 0
        for (i, r) in records.enumerated() {
            let key = r.record.message.map { Array($0.customer.utf8) }
            while true {
                do {
                    try producer.send(KafkaProducerRecord(topic: topic, key: key, value: r.bytes), token: UInt64(i))
                    break
                } catch {
                    guard error.code == .queueFull else { throw error }
                    failed += producer.poll(timeoutMs: 20).filter { !$0.succeeded }.count
                }
            }
            if i % 5_000 == 4_999 { failed += producer.poll(timeoutMs: 0).filter { !$0.succeeded }.count }
        }
        try producer.flush(timeoutMs: 120_000)
        failed += producer.takeReports().filter { !$0.succeeded }.count
        if failed > 0 { throw NotDelivered(description: "\(failed) records not delivered") }
    }
}

/// SplitMix64: small, fast, and the same sequence everywhere for one seed (seeded tests).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `range`.
    public mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * Double(next() >> 11) / Double(1 << 53)
    }
}
