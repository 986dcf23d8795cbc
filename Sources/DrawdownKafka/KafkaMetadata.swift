import CRdKafka

/// Cluster metadata and configuration checks that need no consumer or producer of their own
/// (`drawdown run` uses them before it starts: co-partitioning, `--kafka-option`).
public enum KafkaMetadata {
    /// The partition count of every topic the cluster reports (topics with an error, such as
    /// one being deleted, are left out). Asks for all topics, so nothing is auto-created.
    /// Blocking, up to `timeoutMs`. `properties`: extra librdkafka properties (TLS, SASL).
    public static func partitionCounts(
        bootstrapServers: String, properties: [String: String] = [:], timeoutMs: Int32 = 10_000
    ) throws(KafkaError) -> [String: Int32] {
        // Quiet: a broker it cannot reach is reported by the error this throws, not on stderr.
        var all: [(key: String, value: String)] = [
            ("bootstrap.servers", bootstrapServers), ("client.id", "drawdown-metadata"), ("log_level", "0"),
        ]
        for key in properties.keys.sorted() { all.append((key, properties[key]!)) }
        let conf = try RDKafkaConf(all)
        let handle = RDKafkaHandle(try conf.makeHandle(RD_KAFKA_PRODUCER))
        var metadata: UnsafePointer<rd_kafka_metadata_t>?
        try KafkaError.check(rd_kafka_metadata(handle.rk, 1, nil, &metadata, timeoutMs), "metadata")
        guard let metadata else { return [:] }
        defer { rd_kafka_metadata_destroy(metadata) }
        var counts: [String: Int32] = [:]
        for i in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[i]
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR, let name = topic.topic else { continue }
            counts[String(cString: name)] = topic.partition_cnt
        }
        return counts
    }

    /// Throws, naming the property, when librdkafka does not accept one of `properties` (an
    /// unknown name, or a value out of range). Creates no client.
    public static func validate(_ properties: [String: String]) throws(KafkaError) {
        _ = try RDKafkaConf(properties.keys.sorted().map { ($0, properties[$0]!) })
    }
}
