import CRdKafka

/// A librdkafka error code (`rd_kafka_resp_err_t`): negative values are local (client-side)
/// errors, positive values are errors returned by a broker.
public struct KafkaErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ err: rd_kafka_resp_err_t) { self.rawValue = err.rawValue }
    var rd: rd_kafka_resp_err_t { rd_kafka_resp_err_t(rawValue: rawValue) }

    /// librdkafka's name for the code without the `RD_KAFKA_RESP_ERR_` prefix, e.g.
    /// `NOT_LEADER_FOR_PARTITION` or `_TRANSPORT`.
    public var name: String { String(cString: rd_kafka_err2name(rd)) }
    public var description: String { name }

    /// Looks a code up by its librdkafka name (`NOT_LEADER_FOR_PARTITION`, `_TRANSPORT`) or number.
    public init?(name: String) {
        if let number = Int32(name) { self.init(rawValue: number); return }
        var descs: UnsafePointer<rd_kafka_err_desc>?
        var count = 0
        rd_kafka_get_err_descs(&descs, &count)
        guard let descs else { return nil }
        let wanted = name.uppercased()
        for i in 0..<count {
            guard let cName = descs[i].name else { continue }
            if String(cString: cName) == wanted { self.init(descs[i].code); return }
        }
        return nil
    }

    public static let noError = KafkaErrorCode(RD_KAFKA_RESP_ERR_NO_ERROR)
    public static let partitionEOF = KafkaErrorCode(RD_KAFKA_RESP_ERR__PARTITION_EOF)
    public static let transport = KafkaErrorCode(RD_KAFKA_RESP_ERR__TRANSPORT)
    public static let allBrokersDown = KafkaErrorCode(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    public static let timedOut = KafkaErrorCode(RD_KAFKA_RESP_ERR__TIMED_OUT)
    public static let messageTimedOut = KafkaErrorCode(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
    public static let queueFull = KafkaErrorCode(RD_KAFKA_RESP_ERR__QUEUE_FULL)
    public static let fatal = KafkaErrorCode(RD_KAFKA_RESP_ERR__FATAL)
    public static let state = KafkaErrorCode(RD_KAFKA_RESP_ERR__STATE)
    public static let invalidArgument = KafkaErrorCode(RD_KAFKA_RESP_ERR__INVALID_ARG)
    public static let unknownPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
    public static let unknownTopicOrPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    public static let notLeaderForPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
    public static let leaderNotAvailable = KafkaErrorCode(RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
    public static let requestTimedOut = KafkaErrorCode(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
    public static let topicAuthorizationFailed = KafkaErrorCode(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    public static let messageSizeTooLarge = KafkaErrorCode(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)

    /// Retriable when no `rd_kafka_error_t` says otherwise: transient network, leadership and
    /// coordinator errors (the same set Kafka's Java client marks `RetriableException`).
    var isRetriableByCode: Bool {
        switch rd {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__RESOLVE,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE,
            RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
            RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND, RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH,
            RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT, RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
            return true
        default:
            return false
        }
    }
}

/// An error from librdkafka (or from this adapter's own checks), classified as retriable
/// (the same call may succeed later) and/or fatal (the client instance is unusable: create a
/// new one). The classification comes from `rd_kafka_error_is_retriable` / `_is_fatal` when
/// librdkafka returned an `rd_kafka_error_t`, otherwise from the code.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: KafkaErrorCode
    /// librdkafka's human-readable reason (broker message, connection failure, …).
    public let message: String
    public let isRetriable: Bool
    public let isFatal: Bool
    /// Where it happened, when the error concerns one partition.
    public let topicPartition: KafkaTopicPartition?

    public init(
        code: KafkaErrorCode, message: String? = nil, isRetriable: Bool? = nil, isFatal: Bool? = nil,
        topicPartition: KafkaTopicPartition? = nil
    ) {
        self.code = code
        self.message = message ?? String(cString: rd_kafka_err2str(code.rd))
        self.isRetriable = isRetriable ?? code.isRetriableByCode
        self.isFatal = isFatal ?? (code == .fatal)
        self.topicPartition = topicPartition
    }

    init(_ err: rd_kafka_resp_err_t, _ context: String, topicPartition: KafkaTopicPartition? = nil) {
        let reason = String(cString: rd_kafka_err2str(err))
        self.init(code: KafkaErrorCode(err), message: "\(context): \(reason)", topicPartition: topicPartition)
    }

    /// Reads and destroys an `rd_kafka_error_t` (ownership passes to this call).
    init(consuming error: OpaquePointer, _ context: String) {
        defer { rd_kafka_error_destroy(error) }
        let code = KafkaErrorCode(rd_kafka_error_code(error))
        let fatal = rd_kafka_error_is_fatal(error) != 0
        // librdkafka 2.0.2 does not flag `_QUEUE_FULL` from `rd_kafka_produceva` as retriable,
        // though waiting for deliveries and sending again is exactly right: trust the code too.
        self.init(
            code: code, message: "\(context): \(String(cString: rd_kafka_error_string(error)))",
            isRetriable: !fatal && (rd_kafka_error_is_retriable(error) != 0 || code.isRetriableByCode),
            isFatal: fatal)
    }

    /// Throws when `err` is not `NO_ERROR`.
    static func check(_ err: rd_kafka_resp_err_t, _ context: @autoclosure () -> String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context()) }
    }

    /// Throws (and frees) a non-nil `rd_kafka_error_t`.
    static func check(_ error: OpaquePointer?, _ context: @autoclosure () -> String) throws(KafkaError) {
        if let error { throw KafkaError(consuming: error, context()) }
    }

    /// An error found by this adapter rather than by librdkafka.
    static func adapter(_ message: String, code: KafkaErrorCode = .invalidArgument) -> KafkaError {
        KafkaError(code: code, message: message, isRetriable: false, isFatal: false)
    }

    public var description: String {
        var text = "\(code.name) (\(code.rawValue)): \(message)"
        if let topicPartition { text += " [\(topicPartition)]" }
        if isFatal { text += " [fatal]" } else if isRetriable { text += " [retriable]" }
        return text
    }
}
