import CRdKafka

/// Where a consumer starts in a partition that has no committed offset (and no offset chosen
/// by the caller): librdkafka's `auto.offset.reset`.
public enum KafkaAutoOffsetReset: String, Sendable {
    case earliest, latest
    /// Fail the partition with an error event instead of guessing.
    case error
}

/// Consumer settings. Every librdkafka option Drawdown relies on is set explicitly in
/// `properties`, because several 2.0.x defaults are wrong for us (see docs/kafka.md).
public struct KafkaConsumerConfig: Sendable {
    /// Comma-separated `host:port` list.
    public var bootstrapServers: String
    /// The consumer group. Required for `subscribe`, `commit` and `committed`; a consumer
    /// that only uses `assign` may leave it nil (librdkafka still needs a `group.id` for
    /// `assign`, so `assignOnlyGroupID` is set; such a consumer never joins that group).
    public var groupID: String?
    public var clientID = "drawdown"
    public var autoOffsetReset = KafkaAutoOffsetReset.earliest
    /// Report "caught up" as `.partitionEOF` events.
    public var enablePartitionEOF = true
    public var sessionTimeoutMs = 10_000
    public var heartbeatIntervalMs = 1_000
    public var maxPollIntervalMs = 300_000
    /// How long a fetch waits at the broker for data (lower: less latency at the tail).
    public var fetchWaitMaxMs = 100
    /// Anything else, applied last (e.g. `["debug": "cgrp"]`). Overrides the above.
    public var additionalProperties: [String: String] = [:]

    /// The `group.id` given to librdkafka when `groupID` is nil.
    public static let assignOnlyGroupID = "drawdown.assign-only"

    public init(bootstrapServers: String, groupID: String? = nil) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
    }

    /// The exact librdkafka properties this configuration sets, in order.
    public var properties: [(key: String, value: String)] {
        var p: [(key: String, value: String)] = [
            ("bootstrap.servers", bootstrapServers),
            ("client.id", clientID),
            // Offsets live in the processor's ledger: nothing is stored or committed behind our back.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", autoOffsetReset.rawValue),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.partition.eof", enablePartitionEOF ? "true" : "false"),
            ("session.timeout.ms", String(sessionTimeoutMs)),
            ("heartbeat.interval.ms", String(heartbeatIntervalMs)),
            ("max.poll.interval.ms", String(maxPollIntervalMs)),
            ("fetch.wait.max.ms", String(fetchWaitMaxMs)),
            ("isolation.level", "read_committed"),
            ("check.crcs", "false"),
        ]
        p.append(("group.id", groupID ?? Self.assignOnlyGroupID))
        for key in additionalProperties.keys.sorted() { p.append((key, additionalProperties[key]!)) }
        return p
    }
}

/// Producer settings; idempotent, `acks=all`, murmur2 (Java-compatible) partitioning.
public struct KafkaProducerConfig: Sendable {
    public var bootstrapServers: String
    public var clientID = "drawdown"
    /// How long a record may wait for a successful delivery (including retries) before its
    /// delivery report says `_MSG_TIMED_OUT`.
    public var messageTimeoutMs = 30_000
    public var lingerMs = 5
    /// Records buffered in the client before `send` reports `_QUEUE_FULL` (retriable).
    public var queueBufferingMaxMessages = 100_000
    public var additionalProperties: [String: String] = [:]

    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    public var properties: [(key: String, value: String)] {
        var p: [(key: String, value: String)] = [
            ("bootstrap.servers", bootstrapServers),
            ("client.id", clientID),
            // No duplicates or reordering from internal retries.
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            // Same key -> same partition as the Java client.
            ("partitioner", "murmur2_random"),
            ("message.timeout.ms", String(messageTimeoutMs)),
            ("linger.ms", String(lingerMs)),
            ("queue.buffering.max.messages", String(queueBufferingMaxMessages)),
            ("compression.type", "none"),
        ]
        for key in additionalProperties.keys.sorted() { p.append((key, additionalProperties[key]!)) }
        return p
    }
}

/// Owns an `rd_kafka_conf_t` until `makeHandle` hands it to `rd_kafka_new`.
/// Used by one thread during construction only.
final class RDKafkaConf {
    private var conf: OpaquePointer?

    init(_ properties: [(key: String, value: String)]) throws(KafkaError) {
        conf = rd_kafka_conf_new()
        for (key, value) in properties { try set(key, value) }
    }

    deinit { if let conf { rd_kafka_conf_destroy(conf) } }

    func set(_ key: String, _ value: String) throws(KafkaError) {
        let (result, reason) = withErrorString { rd_kafka_conf_set(conf, key, value, $0, $1) }
        if result != RD_KAFKA_CONF_OK {
            throw KafkaError.adapter("config \(key)=\(value): \(reason)")
        }
    }

    /// Lends the pointer for `rd_kafka_conf_set_*_cb` and friends.
    var pointer: OpaquePointer { conf! }

    /// Creates the client. `rd_kafka_new` frees the conf only on success: on failure it stays
    /// ours and `deinit` destroys it.
    func makeHandle(_ type: rd_kafka_type_t) throws(KafkaError) -> OpaquePointer {
        let (created, reason) = withErrorString { rd_kafka_new(type, conf, $0, $1) }
        guard let rk = created else {
            throw KafkaError.adapter("rd_kafka_new: \(reason)")
        }
        conf = nil  // now owned by rk
        return rk
    }
}

/// Owns an `rd_kafka_t` and destroys it in `deinit`.
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe, and this class has
/// no mutable Swift state of its own; the handle is only destroyed in `deinit`, when no other
/// reference remains.
final class RDKafkaHandle: @unchecked Sendable {
    let rk: OpaquePointer
    /// The object behind the handle's opaque pointer (callback state): released only after
    /// `rd_kafka_destroy` returned, so no callback can see it freed.
    private let callbackState: (any Sendable & AnyObject)?
    init(_ rk: OpaquePointer, callbackState: (any Sendable & AnyObject)? = nil) {
        self.rk = rk
        self.callbackState = callbackState
    }
    deinit { rd_kafka_destroy(rk) }

    /// Creates a client whose callbacks find `callbackState` through the opaque pointer;
    /// `configure` installs the callbacks on the conf.
    static func make(
        _ type: rd_kafka_type_t, _ properties: [(key: String, value: String)],
        callbackState: any Sendable & AnyObject, configure: (OpaquePointer) -> Void
    ) throws(KafkaError) -> RDKafkaHandle {
        let conf = try RDKafkaConf(properties)
        rd_kafka_conf_set_opaque(conf.pointer, Unmanaged.passUnretained(callbackState).toOpaque())
        configure(conf.pointer)
        return RDKafkaHandle(try conf.makeHandle(type), callbackState: callbackState)
    }
}

/// Runs blocking librdkafka work on a dedicated thread so it never occupies a thread of
/// Swift's cooperative pool. Every blocking call in this module (`consumeBatch`, `commit`,
/// `flush`, watermark queries, `close`, …) is meant to be called from such a thread, a
/// `DispatchQueue`, or this helper.
public func withKafkaThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
        let thread = KafkaThread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// Calls `body` with a zeroed error-string buffer (`char *errstr, size_t errstr_size`) and
/// returns its result with the text librdkafka wrote there.
func withErrorString<T>(_ body: (UnsafeMutablePointer<CChar>, Int) -> T) -> (T, String) {
    let size = 512
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: size) { buffer in
        buffer.initialize(repeating: 0)
        let result = body(buffer.baseAddress!, size)
        return (result, String(cString: buffer.baseAddress!))
    }
}
