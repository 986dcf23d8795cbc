#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CRdKafka

/// A record header: a name and an optional value.
public struct KafkaHeader: Hashable, Sendable {
    public var name: String
    public var value: [UInt8]?
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }
}

/// A record's timestamp as the broker or the producer set it.
public struct KafkaTimestamp: Hashable, Sendable {
    public enum Kind: Sendable { case createTime, logAppendTime }
    public var kind: Kind
    /// Milliseconds since the Unix epoch.
    public var milliseconds: Int64
}

/// One consumed record. `key` and `value` are slices of the batch's shared byte storage:
/// reading them copies nothing.
public struct KafkaRecord: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let timestamp: KafkaTimestamp?
    public let key: ArraySlice<UInt8>?
    public let value: ArraySlice<UInt8>?
    public let headers: [KafkaHeader]
    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }
}

/// What else a consume call can return besides records.
public enum KafkaConsumerEvent: Sendable {
    /// The consumer has read everything up to `nextOffset` (exclusive) in this partition.
    case partitionEOF(KafkaTopicPartition, nextOffset: Int64)
    /// Partitions added to this consumer's assignment by a group rebalance.
    case assigned([KafkaTopicPartition])
    /// Partitions taken away by a group rebalance (`lost`: taken without a clean hand-over).
    case revoked([KafkaTopicPartition], lost: Bool)
    /// A consumer or partition error. Most are informational and retried by librdkafka
    /// (`isRetriable`); a fatal one means the consumer must be recreated.
    case error(KafkaError)
}

/// The result of one batch consume: records in arrival order (in offset order within each
/// partition) plus events. All key, value and header bytes live in one buffer, so filling a
/// batch costs one copy of the bytes and no per-record allocation. Reuse one batch across
/// calls (`KafkaConsumer.consumeBatch(into:…)`) to keep its capacity.
public struct KafkaRecordBatch: Sendable, RandomAccessCollection {
    struct Entry {
        var topicIndex: Int32
        var partition: Int32
        var offset: Int64
        var timestamp: Int64
        var timestampType: Int32
        var headerCount: Int32
        var keyStart: Int32
        var keyLength: Int32  // -1: no key
        var valueStart: Int32
        var valueLength: Int32  // -1: no value
        var headerStart: Int32
    }
    struct HeaderEntry {
        var nameStart: Int32, nameLength: Int32
        var valueStart: Int32, valueLength: Int32  // -1: null value
    }

    /// Topic names of this batch (records refer to them by index).
    public private(set) var topics: [String] = []
    private(set) var bytes: [UInt8] = []
    private(set) var entries: [Entry] = []
    private(set) var headerEntries: [HeaderEntry] = []
    /// Partition EOFs, rebalances and errors seen during the call, in order.
    public internal(set) var events: [KafkaConsumerEvent] = []

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }

    public subscript(index: Int) -> KafkaRecord {
        let e = entries[index]
        var headers: [KafkaHeader] = []
        if e.headerCount > 0 {
            headers.reserveCapacity(Int(e.headerCount))
            for h in headerEntries[Int(e.headerStart)..<Int(e.headerStart + e.headerCount)] {
                let name = String(decoding: bytes[Int(h.nameStart)..<Int(h.nameStart + h.nameLength)], as: UTF8.self)
                let value = h.valueLength < 0 ? nil : Array(bytes[Int(h.valueStart)..<Int(h.valueStart + h.valueLength)])
                headers.append(KafkaHeader(name: name, value: value))
            }
        }
        let timestamp: KafkaTimestamp? =
            switch e.timestampType {
            case Int32(RD_KAFKA_TIMESTAMP_CREATE_TIME.rawValue): KafkaTimestamp(kind: .createTime, milliseconds: e.timestamp)
            case Int32(RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME.rawValue): KafkaTimestamp(kind: .logAppendTime, milliseconds: e.timestamp)
            default: nil
            }
        return KafkaRecord(
            topic: topics[Int(e.topicIndex)], partition: e.partition, offset: e.offset, timestamp: timestamp,
            key: e.keyLength < 0 ? nil : bytes[Int(e.keyStart)..<Int(e.keyStart + e.keyLength)],
            value: e.valueLength < 0 ? nil : bytes[Int(e.valueStart)..<Int(e.valueStart + e.valueLength)],
            headers: headers)
    }

    /// The partition of record `index`, without building the record.
    public func partition(at index: Int) -> Int32 { entries[index].partition }
    /// The offset of record `index`, without building the record.
    public func offset(at index: Int) -> Int64 { entries[index].offset }
    /// The index in `topics` of record `index`'s topic, without building the record.
    public func topicIndex(at index: Int) -> Int { Int(entries[index].topicIndex) }
    /// The topic of record `index`, without building the record.
    public func topic(at index: Int) -> String { topics[Int(entries[index].topicIndex)] }
    /// Where record `index`'s key is in the buffer `withUnsafeBufferPointer` lends (nil: no key).
    public func keyRange(at index: Int) -> Range<Int>? {
        let e = entries[index]
        return e.keyLength < 0 ? nil : Int(e.keyStart)..<Int(e.keyStart + e.keyLength)
    }
    /// Where record `index`'s value is in the buffer `withUnsafeBufferPointer` lends (nil: no value).
    public func valueRange(at index: Int) -> Range<Int>? {
        let e = entries[index]
        return e.valueLength < 0 ? nil : Int(e.valueStart)..<Int(e.valueStart + e.valueLength)
    }
    /// Lends the buffer holding every key, value and header byte of the batch (see
    /// `keyRange(at:)`, `valueRange(at:)`): reading many records without building them.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer(body)
    }
    /// Total key + value + header bytes held.
    public var byteCount: Int { bytes.count }

    public mutating func removeAll() {
        topics.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        headerEntries.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
    }

    mutating func reserve(records: Int) {
        entries.reserveCapacity(records)
    }

    /// Appends `count` C messages (a successful one becomes a record, an EOF or error one an
    /// event). The messages stay owned by the caller.
    mutating func append(
        _ messages: UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>, count: Int,
        topicCache: inout TopicNameCache
    ) {
        for i in 0..<count {
            let m = messages[i]!
            let err = m.pointee.err
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                appendRecord(m, topicCache: &topicCache)
            } else {
                appendEvent(m, err)
            }
        }
    }

    @inline(__always)
    private mutating func appendRecord(_ m: UnsafeMutablePointer<rd_kafka_message_t>, topicCache: inout TopicNameCache) {
        let topicIndex = topicIndex(for: m.pointee.rkt, cache: &topicCache)
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(m, &tsType)
        let keyStart = Int32(bytes.count)
        let keyLength = appendBytes(m.pointee.key, m.pointee.key_len)
        let valueStart = Int32(bytes.count)
        let valueLength = appendBytes(m.pointee.payload, m.pointee.len)
        let headerStart = Int32(headerEntries.count)
        let headerCount = appendHeaders(m)
        precondition(bytes.count < Int32.max, "a batch holds less than 2 GiB")
        entries.append(
            Entry(
                topicIndex: topicIndex, partition: m.pointee.partition, offset: m.pointee.offset,
                timestamp: ts, timestampType: Int32(tsType.rawValue), headerCount: headerCount,
                keyStart: keyStart, keyLength: keyLength, valueStart: valueStart, valueLength: valueLength,
                headerStart: headerStart))
    }

    @inline(__always)
    private mutating func appendBytes(_ pointer: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        guard let pointer else { return -1 }
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
        return Int32(length)
    }

    private mutating func appendHeaders(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> Int32 {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return 0 }
        var count: Int32 = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, Int(count), &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let nameStart = Int32(bytes.count)
            let nameLength = name.map { n -> Int32 in
                let length = strlen(n)
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: n, count: length))
                return Int32(length)
            } ?? 0
            let valueStart = Int32(bytes.count)
            let valueLength = appendBytes(UnsafeMutableRawPointer(mutating: value), size)
            headerEntries.append(HeaderEntry(nameStart: nameStart, nameLength: nameLength, valueStart: valueStart, valueLength: valueLength))
            count += 1
        }
        return count
    }

    private mutating func appendEvent(_ m: UnsafeMutablePointer<rd_kafka_message_t>, _ err: rd_kafka_resp_err_t) {
        var tp: KafkaTopicPartition?
        if let rkt = m.pointee.rkt {
            tp = KafkaTopicPartition(topic: String(cString: rd_kafka_topic_name(rkt)), partition: m.pointee.partition)
        }
        if err == RD_KAFKA_RESP_ERR__PARTITION_EOF, let tp {
            events.append(.partitionEOF(tp, nextOffset: m.pointee.offset))
        } else {
            let reason = String(cString: rd_kafka_message_errstr(m))
            events.append(.error(KafkaError(code: KafkaErrorCode(err), message: reason, topicPartition: tp)))
        }
    }

    private mutating func topicIndex(for rkt: OpaquePointer?, cache: inout TopicNameCache) -> Int32 {
        if let rkt, rkt == cache.lastTopic, cache.lastIndex >= 0 { return cache.lastIndex }
        let name = String(cString: rd_kafka_topic_name(rkt))
        let index = Int32(topics.firstIndex(of: name) ?? { topics.append(name); return topics.count - 1 }())
        cache.lastTopic = rkt
        cache.lastIndex = index
        return index
    }
}

/// Remembers the last topic handle seen while filling one batch, so the topic name is
/// converted to a `String` once per run of records, not once per record.
struct TopicNameCache {
    var lastTopic: OpaquePointer?
    var lastIndex: Int32 = -1
}
