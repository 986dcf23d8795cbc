import CRdKafka

/// One partition of one topic.
public struct KafkaTopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// A position in a partition: an exact offset (`>= 0`) or one of librdkafka's logical offsets.
/// Committed and stored offsets are always the *next* offset to read (last processed + 1).
public struct KafkaOffset: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// An exact offset.
    public static func exact(_ offset: Int64) -> KafkaOffset {
        precondition(offset >= 0, "an exact offset is never negative")
        return KafkaOffset(rawValue: offset)
    }
    /// The log start (`RD_KAFKA_OFFSET_BEGINNING`).
    public static let beginning = KafkaOffset(rawValue: Int64(RD_KAFKA_OFFSET_BEGINNING))
    /// The log end (`RD_KAFKA_OFFSET_END`): only records produced from now on.
    public static let end = KafkaOffset(rawValue: Int64(RD_KAFKA_OFFSET_END))
    /// The group's committed offset, else `auto.offset.reset` (`RD_KAFKA_OFFSET_STORED`).
    public static let committed = KafkaOffset(rawValue: Int64(RD_KAFKA_OFFSET_STORED))
    /// No offset (`RD_KAFKA_OFFSET_INVALID`), e.g. nothing committed yet.
    public static let invalid = KafkaOffset(rawValue: Int64(RD_KAFKA_OFFSET_INVALID))

    /// The exact offset, or nil for a logical one.
    public var exactValue: Int64? { rawValue >= 0 ? rawValue : nil }

    public var description: String {
        switch self {
        case .beginning: "beginning"
        case .end: "end"
        case .committed: "committed"
        case .invalid: "invalid"
        default: String(rawValue)
        }
    }
}

/// The low (log start) and high (next offset to be written) watermarks of a partition.
public struct KafkaWatermarks: Hashable, Sendable {
    public var low: Int64
    public var high: Int64
    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}

/// Owns an `rd_kafka_topic_partition_list_t` and frees it in `deinit`; lends the pointer only
/// inside `withPointer`. Used within one call, never shared between threads.
final class RDTopicPartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(capacity: Int) {
        list = rd_kafka_topic_partition_list_new(Int32(max(capacity, 1)))
    }

    convenience init(_ partitions: some Collection<KafkaTopicPartition>, offset: KafkaOffset? = nil) {
        self.init(capacity: partitions.count)
        for tp in partitions { add(tp, offset: offset) }
    }

    convenience init(_ offsets: [KafkaTopicPartition: KafkaOffset]) {
        self.init(capacity: offsets.count)
        for (tp, offset) in offsets { add(tp, offset: offset) }
    }

    /// Takes ownership of a list librdkafka handed over (e.g. from `rd_kafka_assignment`).
    init(owning list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.list = list
    }

    deinit { rd_kafka_topic_partition_list_destroy(list) }

    func add(_ tp: KafkaTopicPartition, offset: KafkaOffset?) {
        let element = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
        if let offset { element.pointee.offset = offset.rawValue }
    }

    func withPointer<T>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws(KafkaError) -> T) throws(KafkaError) -> T {
        try body(list)
    }

    /// Reads a list librdkafka owns (a callback argument) without taking ownership.
    static func elements(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [(KafkaTopicPartition, KafkaOffset, rd_kafka_resp_err_t)] {
        let count = Int(list.pointee.cnt)
        var result: [(KafkaTopicPartition, KafkaOffset, rd_kafka_resp_err_t)] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            let e = list.pointee.elems[i]
            result.append((KafkaTopicPartition(topic: String(cString: e.topic), partition: e.partition), KafkaOffset(rawValue: e.offset), e.err))
        }
        return result
    }

    var elements: [(KafkaTopicPartition, KafkaOffset, rd_kafka_resp_err_t)] { Self.elements(of: list) }

    /// Throws the first per-partition error in the list.
    func checkElements(_ context: String) throws(KafkaError) {
        for (tp, _, err) in elements where err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context, topicPartition: tp)
        }
    }
}
