import DrawdownCore
import DrawdownKafka
import Foundation
import Logging
import Synchronization

/// `POST /v1/commands`: checks a `grant`, `void` or `threshold` message with the engine's own
/// decoder (`MessageDecoder`, the same price book), then produces the posted bytes unchanged
/// to the command topic, keyed by customer (murmur2, so it lands in the customer's partition),
/// and waits for the broker's acknowledgement.
///
/// What only the engine can decide — an unknown grant in `void`, `too_late`, a duplicate or a
/// `conflict` — is decided downstream, in order with everything else of the partition: a
/// repeated id is accepted here again and deduplicated there (SPEC §3).
public final class CommandIntake: Sendable {
    public enum Outcome: Sendable {
        /// Produced and acknowledged.
        case accepted(id: String, customer: String, partition: Int32, offset: Int64?)
        /// Not a valid command: the SPEC §4 reason (or `unsupported_type`) and a detail.
        case rejected(reason: String, detail: String)
        /// Valid, but Kafka did not take it (retry later).
        case unavailable(String)

        var metricResult: String {
            switch self {
            case .accepted: "accepted"
            case .rejected: "rejected"
            case .unavailable: "unavailable"
            }
        }
    }

    public let topic: String
    private let producer: KafkaProducer
    private let priceBook: PriceBook?
    private let logger: Logger
    private let waiting = Mutex<[UInt64: CheckedContinuation<KafkaDeliveryReport, any Error>]>([:])
    private let nextToken = Atomic<UInt64>(1)
    private let stopping = Atomic<Bool>(false)
    private let pollerDone = DispatchSemaphore(value: 0)

    public init(topic: String, producerConfig: KafkaProducerConfig, priceBook: PriceBook?, logger: Logger) throws {
        self.topic = topic
        self.producer = try KafkaProducer(config: producerConfig)
        self.priceBook = priceBook
        self.logger = logger
        let thread = Thread { [self] in pollLoop() }
        thread.name = "drawdown-http-producer"
        thread.start()
    }

    /// Validates `body` as the engine would, then produces it. Never throws: every outcome is
    /// an answer for the client.
    public func submit(_ body: [UInt8]) async -> Outcome {
        var decoder = MessageDecoder(priceBook: priceBook)
        let decoded = body.withUnsafeBufferPointer { decoder.decode($0) }
        let message: Message
        switch decoded {
        case .failure(let rejection):
            return .rejected(reason: rejection.reason.rawValue, detail: rejection.detail)
        case .success(let m):
            message = m
        }
        guard message.type != .usage else {
            return .rejected(
                reason: "unsupported_type",
                detail: "usage events are not taken here: produce them to the usage topic (type must be grant, void or threshold)")
        }
        if stopping.load(ordering: .relaxed) { return .unavailable("shutting down") }
        let token = nextToken.add(1, ordering: .relaxed).oldValue
        let record = KafkaProducerRecord(topic: topic, key: Array(message.customer.utf8), value: body)
        let report: KafkaDeliveryReport
        do {
            report = try await withCheckedThrowingContinuation { continuation in
                // Registered before sending, so the report cannot arrive first.
                waiting.withLock { $0[token] = continuation }
                do {
                    try producer.send(record, token: token)
                } catch {
                    waiting.withLock { $0.removeValue(forKey: token) }?.resume(throwing: error)
                }
            }
        } catch {
            logger.warning("command intake: produce to \(topic) failed: \(error)")
            return .unavailable("\(error)")
        }
        if let error = report.error {
            logger.warning("command intake: delivery to \(topic) failed: \(error)")
            return .unavailable("\(error)")
        }
        return .accepted(id: message.id, customer: message.customer, partition: report.partition, offset: report.offset)
    }

    /// Refuses new commands, waits up to `timeoutMs` for those in flight, stops the poller.
    public func shutdown(timeoutMs: Int32) {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        do {
            try producer.flush(timeoutMs: timeoutMs)
        } catch {
            logger.warning("command intake: flush: \(error)")
        }
        pollerDone.wait()
    }

    private func pollLoop() {
        while true {
            let stop = stopping.load(ordering: .relaxed)
            for report in producer.poll(timeoutMs: 50) {
                waiting.withLock { $0.removeValue(forKey: report.token) }?.resume(returning: report)
            }
            if stop && waiting.withLock({ $0.isEmpty }) { break }
            if stop && producer.outstandingCount == 0 {
                // Flushed, and no report came for those still waiting.
                let left = waiting.withLock { w in
                    defer { w.removeAll() }
                    return Array(w.values)
                }
                for continuation in left { continuation.resume(throwing: IntakeStopped()) }
                break
            }
        }
        pollerDone.signal()
    }
}

struct IntakeStopped: Error, CustomStringConvertible {
    var description: String { "shut down before the broker acknowledged it" }
}
