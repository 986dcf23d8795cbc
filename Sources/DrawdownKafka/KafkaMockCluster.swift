import CRdKafka

/// A Kafka protocol request type, for fault injection (`KafkaMockCluster.pushRequestErrors`).
public struct KafkaAPIKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let produce = KafkaAPIKey(rawValue: 0)
    public static let fetch = KafkaAPIKey(rawValue: 1)
    public static let listOffsets = KafkaAPIKey(rawValue: 2)
    public static let metadata = KafkaAPIKey(rawValue: 3)
    public static let offsetCommit = KafkaAPIKey(rawValue: 8)
    public static let offsetFetch = KafkaAPIKey(rawValue: 9)
    public static let findCoordinator = KafkaAPIKey(rawValue: 10)
    public static let joinGroup = KafkaAPIKey(rawValue: 11)
    public static let heartbeat = KafkaAPIKey(rawValue: 12)
    public static let leaveGroup = KafkaAPIKey(rawValue: 13)
    public static let syncGroup = KafkaAPIKey(rawValue: 14)
    public static let apiVersions = KafkaAPIKey(rawValue: 18)
    public static let initProducerId = KafkaAPIKey(rawValue: 22)

    static let named: [(String, KafkaAPIKey)] = [
        ("Produce", .produce), ("Fetch", .fetch), ("ListOffsets", .listOffsets), ("Metadata", .metadata),
        ("OffsetCommit", .offsetCommit), ("OffsetFetch", .offsetFetch), ("FindCoordinator", .findCoordinator),
        ("JoinGroup", .joinGroup), ("Heartbeat", .heartbeat), ("LeaveGroup", .leaveGroup), ("SyncGroup", .syncGroup),
        ("ApiVersions", .apiVersions), ("InitProducerId", .initProducerId),
    ]

    /// Accepts the protocol name (`Produce`, case-insensitive) or the number.
    public init?(name: String) {
        if let number = Int16(name) { self.init(rawValue: number); return }
        guard let found = Self.named.first(where: { $0.0.lowercased() == name.lowercased() }) else { return nil }
        self = found.1
    }

    public var description: String { Self.named.first { $0.1 == self }?.0 ?? "ApiKey(\(rawValue))" }
}

/// An in-process Kafka-protocol cluster: librdkafka's mock cluster (`rdkafka_mock.h`),
/// listening on loopback ports that any client, in this or another process, can use.
///
/// Limits (librdkafka 2.0.2): in memory only; each partition keeps about 5 MiB or 100,000
/// message sets and silently drops older ones; transactions write no markers and
/// transactional offsets are not stored; no offset lookup by timestamp.
///
/// `@unchecked Sendable`: the mock cluster API is thread-safe (each call is an operation
/// posted to the cluster's own thread); the pointers are immutable and freed in `deinit`.
public final class KafkaMockCluster: @unchecked Sendable {
    private let host: RDKafkaHandle
    private let cluster: OpaquePointer
    /// Comma-separated `host:port` list of the brokers.
    public let bootstrapServers: String
    public let brokerCount: Int

    public init(brokers: Int = 1) throws(KafkaError) {
        precondition(brokers >= 1 && brokers <= 64, "1...64 brokers")
        // A client handle hosts the cluster's thread; it never connects anywhere itself.
        let conf = try RDKafkaConf([("client.id", "drawdown-mock-host"), ("log_level", "3")])
        host = RDKafkaHandle(try conf.makeHandle(RD_KAFKA_PRODUCER))
        guard let cluster = rd_kafka_mock_cluster_new(host.rk, Int32(brokers)) else {
            throw KafkaError.adapter("rd_kafka_mock_cluster_new failed", code: .fatal)
        }
        self.cluster = cluster
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerCount = brokers
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        // `host` is destroyed after the cluster.
    }

    /// Creates `name` with `partitions` partitions (leaders spread over the brokers).
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor), "create topic \(name)")
    }

    /// The next `errors.count` requests of type `api` (to any broker) fail with these errors,
    /// in order. `_TRANSPORT` drops the connection instead.
    public func pushRequestErrors(_ api: KafkaAPIKey, _ errors: [KafkaErrorCode]) {
        let codes = errors.map(\.rd)
        codes.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, codes.count, $0.baseAddress) }
    }

    /// Forgets injected errors not yet used for `api`.
    public func clearRequestErrors(_ api: KafkaAPIKey) {
        rd_kafka_mock_clear_request_errors(cluster, api.rawValue)
    }

    /// Closes the broker's connections and refuses new ones (no automatic leader change:
    /// see `setPartitionLeader`). Brokers are numbered 1...brokerCount.
    public func setBrokerDown(_ broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_down(cluster, broker), "broker \(broker) down")
    }

    public func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_up(cluster, broker), "broker \(broker) up")
    }

    /// Adds `rttMs` of latency to every response of the broker.
    public func setBrokerRTT(_ broker: Int32, rttMs: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_rtt(cluster, broker, rttMs), "broker \(broker) rtt")
    }

    /// Moves a partition's leadership (`broker` -1: no leader).
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), "set leader \(topic)[\(partition)]")
    }

    /// Every metadata/produce/fetch for `topic` answers `error` until set back to `.noError`.
    public func setTopicError(_ topic: String, _ error: KafkaErrorCode) {
        rd_kafka_mock_topic_set_error(cluster, topic, error.rd)
    }

    /// Makes `broker` the coordinator of group (`type` "group") or transactional id ("transaction") `key`.
    public func setCoordinator(type: String, key: String, broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_coordinator_set(cluster, type, key, broker), "coordinator \(type) \(key)")
    }
}
