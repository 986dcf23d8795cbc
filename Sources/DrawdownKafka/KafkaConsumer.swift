import CRdKafka
import Synchronization

/// What the consumer asks its owner when a group rebalance changes the assignment.
/// Both closures run synchronously on the thread that is inside `consumeBatch` (or `close`).
public struct KafkaRebalanceListener: Sendable {
    /// Called with newly assigned partitions; returns where to start in each of them. A
    /// partition not in the result starts at the group's committed offset, else
    /// `auto.offset.reset`. The processor returns the offsets stored in its own ledger.
    public var partitionsAssigned: @Sendable ([KafkaTopicPartition]) -> [KafkaTopicPartition: KafkaOffset]
    /// Called before partitions are taken away (`lost`: already owned by someone else).
    public var partitionsRevoked: @Sendable ([KafkaTopicPartition], _ lost: Bool) -> Void

    public init(
        partitionsAssigned: @escaping @Sendable ([KafkaTopicPartition]) -> [KafkaTopicPartition: KafkaOffset] = { _ in [:] },
        partitionsRevoked: @escaping @Sendable ([KafkaTopicPartition], _ lost: Bool) -> Void = { _, _ in }
    ) {
        self.partitionsAssigned = partitionsAssigned
        self.partitionsRevoked = partitionsRevoked
    }
}

/// State shared with librdkafka's C callbacks through the handle's opaque pointer. Only
/// `Mutex`-protected state, so it is `Sendable` without exceptions.
final class ConsumerCallbacks: Sendable {
    let listener = Mutex<KafkaRebalanceListener>(KafkaRebalanceListener())
    /// Events raised by callbacks (rebalances, client errors), handed out with the next batch.
    let events = Mutex<[KafkaConsumerEvent]>([])
    /// Upper bound on queued callback events; older ones are dropped past it.
    static let queuedEventsMax = 10_000

    func push(_ event: KafkaConsumerEvent) {
        events.withLock {
            if $0.count >= Self.queuedEventsMax { $0.removeFirst() }
            $0.append(event)
        }
    }
}

/// A Kafka consumer: group subscription (cooperative-sticky) or manual assignment, batch
/// consumption, pause/resume, offset store/commit, watermark queries.
///
/// Threading: the methods that take a `timeout` or talk to the broker block the calling
/// thread. Call them from a dedicated thread, a `DispatchQueue`, or `withKafkaThread`, never
/// directly from an `async` function. One thread should own consumption (`consumeBatch`);
/// other methods may be called from any thread (librdkafka's handle is thread-safe).
/// Call `close()` from that thread when done: `deinit` closes a consumer that was not
/// closed, which blocks whichever thread drops the last reference.
public final class KafkaConsumer: Sendable {
    private let handle: RDKafkaHandle
    private let queue: RDQueue
    private let callbacks: ConsumerCallbacks
    private let closed = Mutex(false)
    public let config: KafkaConsumerConfig

    /// Largest batch one `consumeBatch` call returns.
    public static let batchRecordsMax = 100_000

    public init(config: KafkaConsumerConfig) throws(KafkaError) {
        self.config = config
        let callbacks = ConsumerCallbacks()
        let handle = try RDKafkaHandle.make(RD_KAFKA_CONSUMER, config.properties, callbackState: callbacks) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
            rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        }
        let rk = handle.rk
        // Route every event (rebalances, errors, logs) through the consumer queue we drain.
        try KafkaError.check(rd_kafka_poll_set_consumer(rk), "rd_kafka_poll_set_consumer")
        self.handle = handle
        self.queue = RDQueue(rd_kafka_queue_get_consumer(rk)!, owner: handle)
        self.callbacks = callbacks
    }

    deinit {
        closeIfNeeded()
        // Then `queue` is destroyed before the handle (it holds it), and the handle keeps
        // `callbacks` alive until rd_kafka_destroy has returned.
    }

    // MARK: - Assignment

    /// Joins the consumer group and subscribes to `topics`. `listener` chooses start offsets
    /// of newly assigned partitions and hears of revocations.
    public func subscribe(_ topics: [String], listener: KafkaRebalanceListener = KafkaRebalanceListener()) throws(KafkaError) {
        guard config.groupID != nil else { throw KafkaError.adapter("subscribe needs a groupID") }
        callbacks.listener.withLock { $0 = listener }
        let list = RDTopicPartitionList(topics.map { KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA) })
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_subscribe(handle.rk, p), "subscribe \(topics)") }
    }

    /// Replaces the whole assignment with `offsets` (no group management).
    public func assign(_ offsets: [KafkaTopicPartition: KafkaOffset]) throws(KafkaError) {
        let list = RDTopicPartitionList(offsets)
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_assign(handle.rk, p), "assign") }
    }

    /// Removes every partition from the assignment.
    public func unassign() throws(KafkaError) {
        try KafkaError.check(rd_kafka_assign(handle.rk, nil), "unassign")
    }

    /// The partitions currently assigned.
    public func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try KafkaError.check(rd_kafka_assignment(handle.rk, &list), "assignment")
        guard let list else { return [] }
        return RDTopicPartitionList(owning: list).elements.map(\.0)
    }

    /// Moves the fetch position of assigned partitions. Blocks up to `timeoutMs`.
    public func seek(_ offsets: [KafkaTopicPartition: KafkaOffset], timeoutMs: Int32 = 10_000) throws(KafkaError) {
        let list = RDTopicPartitionList(offsets)
        try list.withPointer { (p) throws(KafkaError) in
            try KafkaError.check(rd_kafka_seek_partitions(handle.rk, p, timeoutMs), "seek")
        }
        try list.checkElements("seek")
    }

    /// Stops fetching from `partitions`; records already fetched for them are discarded and
    /// fetched again after `resume`.
    public func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        let list = RDTopicPartitionList(partitions)
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_pause_partitions(handle.rk, p), "pause") }
        try list.checkElements("pause")
    }

    public func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        let list = RDTopicPartitionList(partitions)
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_resume_partitions(handle.rk, p), "resume") }
        try list.checkElements("resume")
    }

    // MARK: - Consumption

    /// Waits up to `timeoutMs` for records and returns at most `maxRecords` of them, plus
    /// the events raised meanwhile. `batch` is cleared first (its capacity is kept).
    /// Blocking: call from a dedicated thread.
    public func consumeBatch(into batch: inout KafkaRecordBatch, maxRecords: Int = 10_000, timeoutMs: Int32 = 100) {
        precondition(maxRecords > 0 && maxRecords <= Self.batchRecordsMax, "maxRecords in 1...\(Self.batchRecordsMax)")
        batch.removeAll()
        batch.reserve(records: maxRecords)
        let messages = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: maxRecords)
        defer { messages.deallocate() }
        let count = rd_kafka_consume_batch_queue(queue.pointer, timeoutMs, messages, maxRecords)
        // Callback events (rebalance, errors) were raised before or during the call: put them first.
        let pending = callbacks.events.withLock { events -> [KafkaConsumerEvent] in
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
        batch.events.append(contentsOf: pending)
        if count < 0 {
            batch.events.append(.error(KafkaError(rd_kafka_last_error(), "consume")))
            return
        }
        var cache = TopicNameCache()
        batch.append(messages, count: count, topicCache: &cache)
        for i in 0..<count { rd_kafka_message_destroy(messages[i]) }
    }

    /// Convenience: returns a new batch.
    public func consumeBatch(maxRecords: Int = 10_000, timeoutMs: Int32 = 100) -> KafkaRecordBatch {
        var batch = KafkaRecordBatch()
        consumeBatch(into: &batch, maxRecords: maxRecords, timeoutMs: timeoutMs)
        return batch
    }

    // MARK: - Offsets

    /// Stores `nextOffsets` (last processed + 1) for the next `commit()`; partitions must be
    /// assigned.
    public func store(_ nextOffsets: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        let list = RDTopicPartitionList(nextOffsets.mapValues { KafkaOffset.exact($0) })
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_offsets_store(handle.rk, p), "offsets_store") }
        try list.checkElements("offsets_store")
    }

    /// Commits synchronously: `nextOffsets` (last processed + 1) when given, else whatever was
    /// `store`d. Blocking.
    public func commit(_ nextOffsets: [KafkaTopicPartition: Int64]? = nil) throws(KafkaError) {
        if let nextOffsets {
            let list = RDTopicPartitionList(nextOffsets.mapValues { KafkaOffset.exact($0) })
            try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_commit(handle.rk, p, 0), "commit") }
            try list.checkElements("commit")
        } else {
            let err = rd_kafka_commit(handle.rk, nil, 0)
            if err == RD_KAFKA_RESP_ERR__NO_OFFSET { return }  // nothing stored: nothing to do
            try KafkaError.check(err, "commit")
        }
    }

    /// The group's committed (next) offsets; `.invalid` where nothing is committed. Blocking.
    public func committed(_ partitions: [KafkaTopicPartition], timeoutMs: Int32 = 10_000) throws(KafkaError) -> [KafkaTopicPartition: KafkaOffset] {
        let list = RDTopicPartitionList(partitions)
        try list.withPointer { (p) throws(KafkaError) in try KafkaError.check(rd_kafka_committed(handle.rk, p, timeoutMs), "committed") }
        try list.checkElements("committed")
        return Dictionary(list.elements.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Asks the partition leader for the watermarks. Blocking, up to `timeoutMs`.
    public func queryWatermarks(_ tp: KafkaTopicPartition, timeoutMs: Int32 = 10_000) throws(KafkaError) -> KafkaWatermarks {
        try rdQueryWatermarks(handle, tp, timeoutMs: timeoutMs)
    }

    /// The watermarks last seen in fetch responses (no request; `high` may be stale, `low`
    /// is only known once fetched). Non-blocking.
    public func cachedWatermarks(_ tp: KafkaTopicPartition) throws(KafkaError) -> KafkaWatermarks {
        var low: Int64 = -1, high: Int64 = -1
        try KafkaError.check(rd_kafka_get_watermark_offsets(handle.rk, tp.topic, tp.partition, &low, &high), "get_watermark_offsets \(tp)")
        return KafkaWatermarks(low: low, high: high)
    }

    /// The fatal error that made this consumer unusable, if any.
    public var fatalError: KafkaError? { fatalErrorOf(handle) }

    // MARK: - Close

    /// Leaves the group (revoking partitions through the listener) and stops fetching.
    /// Commits nothing. Blocking; later calls do nothing.
    public func close() throws(KafkaError) {
        let first = closed.withLock { wasClosed -> Bool in
            defer { wasClosed = true }
            return !wasClosed
        }
        guard first else { return }
        try KafkaError.check(rd_kafka_consumer_close(handle.rk), "consumer_close")
    }

    private func closeIfNeeded() {
        try? close()
    }
}

/// Owns an `rd_kafka_queue_t` and keeps its client alive.
///
/// `@unchecked Sendable`: librdkafka queues are thread-safe; the pointer is immutable and only
/// destroyed in `deinit`.
final class RDQueue: @unchecked Sendable {
    let pointer: OpaquePointer
    private let owner: RDKafkaHandle
    init(_ pointer: OpaquePointer, owner: RDKafkaHandle) {
        self.pointer = pointer
        self.owner = owner
    }
    deinit { rd_kafka_queue_destroy(pointer) }
}

func rdQueryWatermarks(_ handle: RDKafkaHandle, _ tp: KafkaTopicPartition, timeoutMs: Int32) throws(KafkaError) -> KafkaWatermarks {
    var low: Int64 = -1, high: Int64 = -1
    try KafkaError.check(
        rd_kafka_query_watermark_offsets(handle.rk, tp.topic, tp.partition, &low, &high, timeoutMs),
        "query_watermark_offsets \(tp)")
    return KafkaWatermarks(low: low, high: high)
}

func fatalErrorOf(_ handle: RDKafkaHandle) -> KafkaError? {
    let (err, reason) = withErrorString { rd_kafka_fatal_error(handle.rk, $0, $1) }
    guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
    return KafkaError(code: KafkaErrorCode(err), message: reason, isRetriable: false, isFatal: true)
}

/// Reads a client error raised by librdkafka, resolving `_FATAL` to the underlying error.
func clientError(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?) -> KafkaError {
    let code = KafkaErrorCode(rawValue: err)
    let text = reason.map { String(cString: $0) } ?? ""
    if code == .fatal, let rk {
        let (underlying, reason) = withErrorString { rd_kafka_fatal_error(rk, $0, $1) }
        return KafkaError(code: KafkaErrorCode(underlying), message: reason, isRetriable: false, isFatal: true)
    }
    return KafkaError(code: code, message: text)
}

// MARK: - C callbacks (run on the thread serving the consumer queue)

private func consumerCallbacks(_ opaque: UnsafeMutableRawPointer?) -> ConsumerCallbacks {
    Unmanaged<ConsumerCallbacks>.fromOpaque(opaque!).takeUnretainedValue()
}

private let consumerErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, reason, opaque in
    consumerCallbacks(opaque).push(.error(clientError(rk, err, reason)))
}

private let consumerRebalanceCallback:
    @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = {
        rk, err, partitions, opaque in
        guard let rk, let partitions else { return }
        let callbacks = consumerCallbacks(opaque)
        let listener = callbacks.listener.withLock { $0 }
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        let tps = RDTopicPartitionList.elements(of: partitions).map(\.0)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let chosen = listener.partitionsAssigned(tps)
            for i in 0..<Int(partitions.pointee.cnt) {
                let e = partitions.pointee.elems[i]
                let tp = KafkaTopicPartition(topic: String(cString: e.topic), partition: e.partition)
                if let offset = chosen[tp] { partitions.pointee.elems[i].offset = offset.rawValue }
            }
            let failure: KafkaError?
            if cooperative {
                failure = rd_kafka_incremental_assign(rk, partitions).map { KafkaError(consuming: $0, "incremental_assign") }
            } else {
                let e = rd_kafka_assign(rk, partitions)
                failure = e == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(e, "assign")
            }
            callbacks.push(.assigned(tps))
            if let failure { callbacks.push(.error(failure)) }
        default:  // _REVOKE_PARTITIONS or an error: give the partitions up
            let lost = rd_kafka_assignment_lost(rk) != 0
            listener.partitionsRevoked(tps, lost)
            let failure: KafkaError?
            if cooperative {
                failure = rd_kafka_incremental_unassign(rk, partitions).map { KafkaError(consuming: $0, "incremental_unassign") }
            } else {
                let e = rd_kafka_assign(rk, nil)
                failure = e == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(e, "unassign")
            }
            callbacks.push(.revoked(tps, lost: lost))
            if let failure { callbacks.push(.error(failure)) }
        }
    }
