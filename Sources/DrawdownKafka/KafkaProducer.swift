import CRdKafka
import Synchronization

/// A record to produce.
public struct KafkaProducerRecord: Sendable {
    public var topic: String
    /// nil: the partitioner (murmur2 of the key, random for a null key) chooses.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// Milliseconds since the Unix epoch; nil: now.
    public var timestampMs: Int64?

    public init(
        topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = [],
        timestampMs: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMs = timestampMs
    }
}

/// The outcome of one produced record, identified by the caller's `token`.
public struct KafkaDeliveryReport: Sendable {
    /// The token given to `send`.
    public var token: UInt64
    public var topic: String
    public var partition: Int32
    /// The offset the broker assigned; nil on failure (and possibly for retried records).
    public var offset: Int64?
    /// nil: delivered (acknowledged by all in-sync replicas). Otherwise why it failed for good.
    public var error: KafkaError?
    public var succeeded: Bool { error == nil }
}

/// State shared with the C callbacks: delivery reports and client errors, `Mutex`-protected.
final class ProducerCallbacks: Sendable {
    let reports = Mutex<[KafkaDeliveryReport]>([])
    let errors = Mutex<[KafkaError]>([])
    static let queuedErrorsMax = 10_000
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`, murmur2 partitioner).
///
/// Delivery reports are collected as records are acknowledged (or fail for good) and handed
/// out by `poll`. Every record sent yields exactly one report, unless the producer is
/// destroyed first.
///
/// Threading: `poll`, `flush` and `close` block; call them from a dedicated thread or
/// `withKafkaThread`. `send` does not block and may be called from any thread.
public final class KafkaProducer: Sendable {
    private let handle: RDKafkaHandle
    private let callbacks: ProducerCallbacks
    public let config: KafkaProducerConfig
    /// Topic handles made by `topic(_:)`, destroyed with the producer.
    private let topics = Mutex<[String: Topic]>([:])

    /// A topic handle of this producer (`rd_kafka_topic_t`): sending through it costs no
    /// per-record lookup of the name. Valid while its producer is alive.
    public struct Topic: @unchecked Sendable {
        // `@unchecked`: librdkafka topic handles are thread-safe; the pointer is destroyed
        // only when the producer is.
        fileprivate let rkt: OpaquePointer
        public let name: String
    }

    /// The handle of topic `name` (made once, then cached).
    public func topic(_ name: String) throws(KafkaError) -> Topic {
        let result: Result<Topic, KafkaError> = topics.withLock { topics in
            if let known = topics[name] { return .success(known) }
            guard let rkt = rd_kafka_topic_new(handle.rk, name, nil) else {
                return .failure(KafkaError(rd_kafka_last_error(), "topic_new \(name)"))
            }
            let topic = Topic(rkt: rkt, name: name)
            topics[name] = topic
            return .success(topic)
        }
        return try result.get()
    }

    deinit {
        topics.withLock { topics in
            for topic in topics.values { rd_kafka_topic_destroy(topic.rkt) }
        }
    }

    /// Enqueues one record with no headers, the producer choosing the partition from the
    /// key, its bytes copied by librdkafka before this returns; its delivery report will
    /// carry `token`. The per-record path of `send(_:token:)` without building anything:
    /// no allocation here. Throws as `send(_:token:)` does.
    public func send(
        _ topic: Topic, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?, token: UInt64
    ) throws(KafkaError) {
        let error: OpaquePointer? = withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 5) { vus in
            var vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_RKT
            vu.u.rkt = topic.rkt
            vus.initializeElement(at: 0, to: vu)
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS
            vu.u.i = RD_KAFKA_MSG_F_COPY
            vus.initializeElement(at: 1, to: vu)
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_KEY
            vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: key?.baseAddress)
            vu.u.mem.size = key?.count ?? 0
            vus.initializeElement(at: 2, to: vu)
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_VALUE
            vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: value?.baseAddress)
            vu.u.mem.size = value?.count ?? 0
            vus.initializeElement(at: 3, to: vu)
            vu = rd_kafka_vu_t()
            vu.vtype = RD_KAFKA_VTYPE_OPAQUE
            vu.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(token))
            vus.initializeElement(at: 4, to: vu)
            let result = rd_kafka_produceva(handle.rk, vus.baseAddress, 5)
            vus.baseAddress!.deinitialize(count: 5)
            return result
        }
        if let error { try KafkaError.check(error, "produce to \(topic.name)") }
    }

    public init(config: KafkaProducerConfig) throws(KafkaError) {
        self.config = config
        let callbacks = ProducerCallbacks()
        self.handle = try RDKafkaHandle.make(RD_KAFKA_PRODUCER, config.properties, callbackState: callbacks) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
            rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        }
        self.callbacks = callbacks
    }

    /// Enqueues `record`; its delivery report will carry `token`. Throws at once when the
    /// record cannot be queued (`_QUEUE_FULL` is retriable: `poll` and send again;
    /// `_UNKNOWN_PARTITION`, `_MSG_SIZE_TOO_LARGE`, … are not). Does not block.
    public func send(_ record: KafkaProducerRecord, token: UInt64) throws(KafkaError) {
        // C strings for the topic and header names, laid out in one buffer.
        var strings: [CChar] = []
        strings.reserveCapacity(record.topic.utf8.count + 1 + record.headers.reduce(0) { $0 + $1.name.utf8.count + 1 })
        func appendCString(_ s: String) -> Int {
            let start = strings.count
            strings.append(contentsOf: s.utf8.map { CChar(bitPattern: $0) })
            strings.append(0)
            return start
        }
        let topicStart = appendCString(record.topic)
        let nameStarts = record.headers.map { appendCString($0.name) }
        let vuCount = 6 + (record.timestampMs == nil ? 0 : 1) + record.headers.count
        let error: OpaquePointer? = strings.withUnsafeBufferPointer { cstrings in
            withOptionalBytes(record.key) { key in
                withOptionalBytes(record.value) { value in
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: vuCount) { vus in
                        var n = 0
                        func add(_ type: rd_kafka_vtype_t, _ set: (inout rd_kafka_vu_t) -> Void) {
                            var vu = rd_kafka_vu_t()
                            vu.vtype = type
                            set(&vu)
                            vus.initializeElement(at: n, to: vu)
                            n += 1
                        }
                        add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = cstrings.baseAddress! + topicStart }
                        add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = record.partition ?? RD_KAFKA_PARTITION_UA }
                        add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key?.baseAddress)
                            $0.u.mem.size = key?.count ?? 0
                        }
                        add(RD_KAFKA_VTYPE_VALUE) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value?.baseAddress)
                            $0.u.mem.size = value?.count ?? 0
                        }
                        add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(token)) }
                        if let ts = record.timestampMs { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = ts } }
                        // Header values must outlive produceva (it copies them): pin them all.
                        return withHeaderValues(record.headers) { values in
                            for (i, start) in nameStarts.enumerated() {
                                add(RD_KAFKA_VTYPE_HEADER) {
                                    $0.u.header.name = cstrings.baseAddress! + start
                                    $0.u.header.val = values[i].map { UnsafeRawPointer($0.baseAddress ?? UnsafeRawPointer(cstrings.baseAddress!)) }
                                    $0.u.header.size = values[i].map { $0.count } ?? -1
                                }
                            }
                            let result = rd_kafka_produceva(handle.rk, vus.baseAddress, n)
                            vus.baseAddress!.deinitialize(count: n)
                            return result
                        }
                    }
                }
            }
        }
        try KafkaError.check(error, "produce to \(record.topic)")
    }

    /// Serves delivery-report callbacks for up to `timeoutMs` (0: no wait) and returns the
    /// reports collected since the last call. Blocking when `timeoutMs > 0`.
    public func poll(timeoutMs: Int32 = 0) -> [KafkaDeliveryReport] {
        rd_kafka_poll(handle.rk, timeoutMs)
        return takeReports()
    }

    /// Reports collected so far (without serving callbacks).
    public func takeReports() -> [KafkaDeliveryReport] {
        callbacks.reports.withLock { reports in
            defer { reports.removeAll(keepingCapacity: true) }
            return reports
        }
    }

    /// Client errors raised since the last call (e.g. `_ALL_BROKERS_DOWN`, `_TRANSPORT`,
    /// fatal idempotence errors). Usually informational: librdkafka retries.
    public func takeErrors() -> [KafkaError] {
        callbacks.errors.withLock { errors in
            defer { errors.removeAll(keepingCapacity: true) }
            return errors
        }
    }

    /// Records sent whose delivery report has not been served yet.
    public var outstandingCount: Int { Int(rd_kafka_outq_len(handle.rk)) }

    /// Waits until every record sent so far has a delivery report (collect them with
    /// `poll`/`takeReports`). Throws `_TIMED_OUT` (retriable) if some are still outstanding
    /// after `timeoutMs`. Blocking.
    public func flush(timeoutMs: Int32) throws(KafkaError) {
        let err = rd_kafka_flush(handle.rk, timeoutMs)
        if err == RD_KAFKA_RESP_ERR__TIMED_OUT {
            throw KafkaError(code: .timedOut, message: "flush: \(outstandingCount) records still outstanding after \(timeoutMs) ms")
        }
        try KafkaError.check(err, "flush")
    }

    /// Asks the partition leader for the watermarks. Blocking, up to `timeoutMs`.
    public func queryWatermarks(_ tp: KafkaTopicPartition, timeoutMs: Int32 = 10_000) throws(KafkaError) -> KafkaWatermarks {
        try rdQueryWatermarks(handle, tp, timeoutMs: timeoutMs)
    }

    /// The fatal error that made this producer unusable, if any.
    public var fatalError: KafkaError? { fatalErrorOf(handle) }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// Pins every header value's bytes for the duration of `body`.
private func withHeaderValues<R>(_ headers: [KafkaHeader], _ body: ([UnsafeRawBufferPointer?]) -> R) -> R {
    // One buffer for all values; nil stays nil.
    var all: [UInt8] = []
    var ranges: [Range<Int>?] = []
    for h in headers {
        if let v = h.value {
            ranges.append(all.count..<all.count + v.count)
            all.append(contentsOf: v)
        } else {
            ranges.append(nil)
        }
    }
    return all.withUnsafeBytes { buffer in
        body(ranges.map { r in r.map { UnsafeRawBufferPointer(rebasing: buffer[$0]) } })
    }
}

// MARK: - C callbacks (run on the thread inside poll/flush)

private func producerCallbacks(_ opaque: UnsafeMutableRawPointer?) -> ProducerCallbacks {
    Unmanaged<ProducerCallbacks>.fromOpaque(opaque!).takeUnretainedValue()
}

private let producerDeliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    _, message, opaque in
    guard let m = message?.pointee else { return }
    let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
    let error: KafkaError? =
        m.err == RD_KAFKA_RESP_ERR_NO_ERROR
        ? nil
        : KafkaError(
            code: KafkaErrorCode(m.err), message: String(cString: rd_kafka_err2str(m.err)),
            topicPartition: KafkaTopicPartition(topic: topic, partition: m.partition))
    let report = KafkaDeliveryReport(
        token: UInt64(UInt(bitPattern: m._private)), topic: topic, partition: m.partition,
        offset: m.offset >= 0 ? m.offset : nil, error: error)
    producerCallbacks(opaque).reports.withLock { $0.append(report) }
}

private let producerErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, reason, opaque in
    let error = clientError(rk, err, reason)
    producerCallbacks(opaque).errors.withLock {
        if $0.count >= ProducerCallbacks.queuedErrorsMax { $0.removeFirst() }
        $0.append(error)
    }
}
