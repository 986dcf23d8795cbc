import CRdKafka

/// Benchmark baseline only: the drain the consume benchmark compares `KafkaConsumer` with,
/// written directly against librdkafka's C API (same configuration, same
/// `rd_kafka_consume_batch_queue` calls, key and value bytes copied out), so the benchmark
/// package needs no C module of its own. Not for production use.
public enum KafkaBenchmarkBaseline {
    public struct DrainResult: Sendable {
        public var records: Int
        public var bytes: Int
        /// Sum of all offsets: keeps the loop's reads observable.
        public var offsetSum: Int64
    }

    /// Assigns every partition of `topic` from the beginning and consumes until `records`
    /// records have arrived (or 600 calls of 100 ms in a row came back empty).
    public static func rawDrain(
        config: KafkaConsumerConfig, topic: String, partitions: Int32, records expected: Int,
        maxRecordsPerBatch: Int = 10_000
    ) throws(KafkaError) -> DrainResult {
        let conf = try RDKafkaConf(config.properties)
        let handle = RDKafkaHandle(try conf.makeHandle(RD_KAFKA_CONSUMER))
        let rk = handle.rk
        let list = rd_kafka_topic_partition_list_new(partitions)!
        for p in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, p)!.pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING) }
        let assignErr = rd_kafka_assign(rk, list)
        rd_kafka_topic_partition_list_destroy(list)
        try KafkaError.check(assignErr, "assign")
        let queue = rd_kafka_queue_get_consumer(rk)!
        defer {
            rd_kafka_queue_destroy(queue)
            rd_kafka_consumer_close(rk)
        }
        let messages = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: maxRecordsPerBatch)
        defer { messages.deallocate() }
        var copied: [UInt8] = []
        copied.reserveCapacity(maxRecordsPerBatch * 256)
        var result = DrainResult(records: 0, bytes: 0, offsetSum: 0)
        var emptyInARow = 0
        while result.records < expected && emptyInARow < 600 {
            let n = rd_kafka_consume_batch_queue(queue, 100, messages, maxRecordsPerBatch)
            emptyInARow = n > 0 ? 0 : emptyInARow + 1
            copied.removeAll(keepingCapacity: true)
            for i in 0..<max(n, 0) {
                let m = messages[i]!
                if m.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                    if let key = m.pointee.key { copied.append(contentsOf: UnsafeRawBufferPointer(start: key, count: m.pointee.key_len)) }
                    if let value = m.pointee.payload { copied.append(contentsOf: UnsafeRawBufferPointer(start: value, count: m.pointee.len)) }
                    result.records += 1
                    result.offsetSum &+= m.pointee.offset
                }
                rd_kafka_message_destroy(m)
            }
            result.bytes += copied.count
        }
        return result
    }
}
