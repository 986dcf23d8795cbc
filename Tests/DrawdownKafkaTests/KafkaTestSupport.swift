import DrawdownTestSupport
import DrawdownKafka
import Foundation

/// Limits for the Kafka tests: generous, because the machine may be loaded.
enum TestLimits {
    static let consumeDeadlineSeconds: TimeInterval = 90
    static let flushTimeoutMs: Int32 = 60_000
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Java's `Utils.murmur2` (what the `murmur2_random` partitioner uses for non-null keys).
func javaMurmur2(_ data: [UInt8]) -> Int32 {
    let m: UInt32 = 0x5bd1_e995
    let length = data.count
    var h: UInt32 = 0x9747_b28c ^ UInt32(length)
    for i in 0..<(length / 4) {
        let j = i * 4
        var k = UInt32(data[j]) | UInt32(data[j + 1]) << 8 | UInt32(data[j + 2]) << 16 | UInt32(data[j + 3]) << 24
        k = k &* m
        k ^= k >> 24
        k = k &* m
        h = h &* m
        h ^= k
    }
    let tail = length & ~3
    switch length % 4 {
    case 3:
        h ^= UInt32(data[tail + 2]) << 16
        h ^= UInt32(data[tail + 1]) << 8
        h ^= UInt32(data[tail])
        h = h &* m
    case 2:
        h ^= UInt32(data[tail + 1]) << 8
        h ^= UInt32(data[tail])
        h = h &* m
    case 1:
        h ^= UInt32(data[tail])
        h = h &* m
    default: break
    }
    h ^= h >> 13
    h = h &* m
    h ^= h >> 15
    return Int32(bitPattern: h)
}

func murmur2Partition(_ key: [UInt8], partitions: Int32) -> Int32 {
    (javaMurmur2(key) & 0x7fff_ffff) % partitions
}

/// Sends every record (token = index), retrying `_QUEUE_FULL`, then flushes and returns the
/// delivery reports by token.
func produceAll(_ producer: KafkaProducer, _ records: [KafkaProducerRecord]) throws -> [UInt64: KafkaDeliveryReport] {
    var reports: [UInt64: KafkaDeliveryReport] = [:]
    for (i, record) in records.enumerated() {
        while !trySend(producer, record, token: UInt64(i)) {
            for r in producer.poll(timeoutMs: 100) { reports[r.token] = r }
        }
        if i % 1_000 == 0 { for r in producer.poll(timeoutMs: 0) { reports[r.token] = r } }
    }
    try producer.flush(timeoutMs: TestLimits.flushTimeoutMs)
    for r in producer.poll(timeoutMs: 0) { reports[r.token] = r }
    return reports
}

/// Sends one record; false when the queue is full (retry after polling), throws otherwise.
func trySend(_ producer: KafkaProducer, _ record: KafkaProducerRecord, token: UInt64) -> Bool {
    do {
        try producer.send(record, token: token)
        return true
    } catch {
        precondition(error.code == .queueFull, "send failed: \(error)")
        return false
    }
}

/// Consumes batches until `done` says so or the deadline passes; `handle` sees each batch.
func consume(
    _ consumer: KafkaConsumer, maxRecords: Int = 10_000, deadlineSeconds: TimeInterval = TestLimits.consumeDeadlineSeconds,
    handle: (KafkaRecordBatch) -> Void, until done: () -> Bool
) -> Bool {
    let deadline = Date().addingTimeInterval(deadlineSeconds)
    var batch = KafkaRecordBatch()
    while Date() < deadline {
        consumer.consumeBatch(into: &batch, maxRecords: maxRecords, timeoutMs: 200)
        handle(batch)
        if done() { return true }
    }
    return false
}

/// A loopback port nothing listens on (bound, then closed).
func unusedLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: addr.sin_port)
}

/// The dev broker subprocess, shared with the other test targets.
typealias DevBrokerProcess = TestDevBroker
