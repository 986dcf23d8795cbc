/// One line of the dev broker's control channel (see docs/dev-broker.md):
///
///     error <Api> <count> <ERROR>     the next <count> <Api> requests fail with <ERROR>
///     errors <Api> <ERROR> [<ERROR>…] the next requests fail with these errors, in order
///     clear <Api>                     forget injected errors not used yet
///     down <broker>                   broker stops answering (connections closed)
///     up <broker>                     broker answers again
///     leader <topic> <partition> <broker>
///     rtt <broker> <milliseconds>
///     topic <name> <partitions>       create a topic
///     topic-error <name> <ERROR>      every request for the topic fails (NO_ERROR ends it)
///     ping                            answers ok
///
/// `<Api>` is a protocol name (`Produce`, `Fetch`, `Metadata`, …) or number; `<ERROR>` a
/// librdkafka error name (`NOT_LEADER_FOR_PARTITION`, `_TRANSPORT`, …) or number.
public enum DevBrokerControlCommand: Equatable, Sendable {
    case pushErrors(KafkaAPIKey, [KafkaErrorCode])
    case clearErrors(KafkaAPIKey)
    case brokerDown(Int32)
    case brokerUp(Int32)
    case leader(topic: String, partition: Int32, broker: Int32)
    case rtt(broker: Int32, milliseconds: Int32)
    case createTopic(String, partitions: Int32)
    case topicError(String, KafkaErrorCode)
    case ping

    /// The most errors one `error` line may push.
    public static let errorsPerCommandMax = 100_000

    public static let usage = """
        error <Api> <count> <ERROR> | errors <Api> <ERROR>... | clear <Api> | down <broker> | up <broker> | \
        leader <topic> <partition> <broker> | rtt <broker> <ms> | topic <name> <partitions> | topic-error <name> <ERROR> | ping
        """

    /// Parses one line; throws a message saying what is wrong.
    public init(parsing line: String) throws(KafkaError) {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        func api(_ s: String) throws(KafkaError) -> KafkaAPIKey {
            guard let key = KafkaAPIKey(name: s) else { throw KafkaError.adapter("unknown api \(s)") }
            return key
        }
        func code(_ s: String) throws(KafkaError) -> KafkaErrorCode {
            guard let c = KafkaErrorCode(name: s) else { throw KafkaError.adapter("unknown error \(s)") }
            return c
        }
        func int(_ s: String) throws(KafkaError) -> Int32 {
            guard let v = Int32(s) else { throw KafkaError.adapter("not a number: \(s)") }
            return v
        }
        switch (words.first?.lowercased(), words.count) {
        case ("error", 4):
            let count = try int(words[2])
            guard count >= 1 && count <= Self.errorsPerCommandMax else { throw KafkaError.adapter("count in 1...\(Self.errorsPerCommandMax)") }
            self = .pushErrors(try api(words[1]), Array(repeating: try code(words[3]), count: Int(count)))
        case ("errors", 3...):
            var codes: [KafkaErrorCode] = []
            for w in words.dropFirst(2) { codes.append(try code(w)) }
            self = .pushErrors(try api(words[1]), codes)
        case ("clear", 2): self = .clearErrors(try api(words[1]))
        case ("down", 2): self = .brokerDown(try int(words[1]))
        case ("up", 2): self = .brokerUp(try int(words[1]))
        case ("leader", 4): self = .leader(topic: words[1], partition: try int(words[2]), broker: try int(words[3]))
        case ("rtt", 3): self = .rtt(broker: try int(words[1]), milliseconds: try int(words[2]))
        case ("topic", 3): self = .createTopic(words[1], partitions: try int(words[2]))
        case ("topic-error", 3): self = .topicError(words[1], try code(words[2]))
        case ("ping", 1): self = .ping
        default: throw KafkaError.adapter("cannot parse \"\(line)\"; commands: \(Self.usage)")
        }
    }

    /// Carries the command out on `cluster`.
    public func apply(to cluster: KafkaMockCluster) throws(KafkaError) {
        switch self {
        case .pushErrors(let api, let codes): cluster.pushRequestErrors(api, codes)
        case .clearErrors(let api): cluster.clearRequestErrors(api)
        case .brokerDown(let b): try cluster.setBrokerDown(b)
        case .brokerUp(let b): try cluster.setBrokerUp(b)
        case .leader(let topic, let partition, let broker): try cluster.setPartitionLeader(topic: topic, partition: partition, broker: broker)
        case .rtt(let broker, let ms): try cluster.setBrokerRTT(broker, rttMs: ms)
        case .createTopic(let name, let partitions): try cluster.createTopic(name, partitions: partitions)
        case .topicError(let name, let code): cluster.setTopicError(name, code)
        case .ping: break
        }
    }
}
