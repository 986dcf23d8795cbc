import DrawdownTestSupport
import DrawdownKafka
import Foundation
import Testing

@Suite("Kafka adapter under faults", .serialized)
struct KafkaFaultTests {
    /// Sends one record and polls until its delivery report arrives (bounded).
    static func sendAndAwaitReport(_ producer: KafkaProducer, _ record: KafkaProducerRecord, token: UInt64) throws -> KafkaDeliveryReport? {
        try producer.send(record, token: token)
        let deadline = Date().addingTimeInterval(TestLimits.consumeDeadlineSeconds)
        while Date() < deadline {
            if let report = producer.poll(timeoutMs: 100).first(where: { $0.token == token }) { return report }
        }
        return nil
    }

    /// Retriable produce errors injected through the dev broker's control channel are retried
    /// and the record is reported delivered; a non-retriable one is reported as a failure.
    @Test func deliveryReportsSurviveRetriableErrorsAndReportFailures() async throws {
        let broker = try DevBrokerProcess(topics: ["dr:1"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let outcome = try await withKafkaThread {
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
            let record = { (i: Int) in KafkaProducerRecord(topic: "dr", key: bytes("k"), value: bytes("v\(i)")) }
            // Warm up: producer id and metadata acquired.
            let warm = try Self.sendAndAwaitReport(producer, record(0), token: 100)
            let injectRetriable = try broker.control("error Produce 3 NOT_LEADER_FOR_PARTITION")
            let retried = try Self.sendAndAwaitReport(producer, record(1), token: 101)
            let injectFatal = try broker.control("error Produce 1 MSG_SIZE_TOO_LARGE")
            let failed = try Self.sendAndAwaitReport(producer, record(2), token: 102)
            let after = try Self.sendAndAwaitReport(producer, record(3), token: 103)
            let badCommand = try broker.control("error Produce many NOT_AN_ERROR")
            return (warm, injectRetriable, retried, injectFatal, failed, after, badCommand)
        }
        let (warm, injectRetriable, retried, injectFatal, failed, after, badCommand) = outcome
        #expect(warm?.succeeded == true)
        #expect(injectRetriable == "ok")
        #expect(injectFatal == "ok")
        #expect(retried?.succeeded == true, "\(String(describing: retried?.error))")
        #expect(retried?.offset == 1)
        let failure = try #require(failed?.error)
        #expect(failure.code == .messageSizeTooLarge)
        #expect(!failure.isRetriable)
        #expect(after?.succeeded == true, "\(String(describing: after?.error))")
        #expect(badCommand.hasPrefix("error:"))
    }

    /// The same injection in-process, through `KafkaMockCluster`.
    @Test func inProcessMockInjectsRetriableErrors() async throws {
        let report = try await withKafkaThread { () -> KafkaDeliveryReport? in
            let cluster = try KafkaMockCluster(brokers: 3)
            try cluster.createTopic("inproc", partitions: 3)
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: cluster.bootstrapServers))
            cluster.pushRequestErrors(.produce, [.notLeaderForPartition, .leaderNotAvailable, .requestTimedOut])
            return try Self.sendAndAwaitReport(
                producer, KafkaProducerRecord(topic: "inproc", partition: 1, key: nil, value: bytes("x")), token: 7)
        }
        #expect(report?.succeeded == true, "\(String(describing: report?.error))")
        #expect(report?.partition == 1)
    }

    /// An address nothing listens on gives clear errors within bounded time: the delivery
    /// report fails, queries throw, the consumer reports an error event.
    @Test func unreachableBrokerFailsWithinBoundedTime() async throws {
        let bootstrap = "127.0.0.1:\(unusedLoopbackPort())"
        let outcome = try await withKafkaThread {
            var config = KafkaProducerConfig(bootstrapServers: bootstrap)
            config.messageTimeoutMs = 3_000
            let producer = try KafkaProducer(config: config)
            let report = try Self.sendAndAwaitReport(producer, KafkaProducerRecord(topic: "nowhere", key: nil, value: bytes("x")), token: 1)
            let producerErrors = producer.takeErrors()
            let query = Result { () throws(KafkaError) in
                try producer.queryWatermarks(KafkaTopicPartition(topic: "nowhere", partition: 0), timeoutMs: 2_000)
            }
            let queryError: KafkaError? = if case .failure(let e) = query { e } else { nil }

            let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap, groupID: "nowhere"))
            try consumer.subscribe(["nowhere"])
            var consumerErrors: [KafkaError] = []
            _ = consume(consumer, handle: { batch in
                for case .error(let e) in batch.events { consumerErrors.append(e) }
            }, until: { !consumerErrors.isEmpty })
            return (report, producerErrors, queryError, consumerErrors)
        }
        let (report, producerErrors, queryError, consumerErrors) = outcome
        let failure = try #require(report?.error)
        #expect(failure.code == .messageTimedOut)
        #expect(!producerErrors.isEmpty)
        #expect(producerErrors.contains { $0.code == .transport || $0.code == .allBrokersDown })
        #expect(queryError != nil)
        let consumerError = try #require(consumerErrors.first)
        #expect([KafkaErrorCode.transport, .allBrokersDown].contains(consumerError.code), "\(consumerError)")
        #expect(consumerError.message.contains("127.0.0.1"), "\(consumerError)")
    }

    /// `--bootstrap-file` holds the same servers as the first line; SIGTERM exits 0.
    @Test func devBrokerWritesBootstrapFileAndExitsCleanly() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drawdown-devbroker-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bootstrap")
        let broker = try DevBrokerProcess(brokers: 3, topics: ["a:2", "b"], extraArguments: ["--bootstrap-file", file.path])
        defer { broker.stop() }
        let written = try String(contentsOf: file, encoding: .utf8)
        #expect(written == broker.bootstrapServers + "\n")
        #expect(broker.bootstrapServers.split(separator: ",").count == 3)
        #expect(try broker.control("ping") == "ok")
        #expect(try broker.control("down 2") == "ok")
        #expect(try broker.control("up 2") == "ok")
        #expect(try broker.control("leader a 1 3") == "ok")
        broker.stop()
        #expect(broker.terminationStatus == 0)
    }
}
