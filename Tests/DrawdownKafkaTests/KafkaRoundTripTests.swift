import DrawdownTestSupport
import DrawdownKafka
import Foundation
import Testing

@Suite("Kafka adapter against the dev broker", .serialized)
struct KafkaRoundTripTests {
    /// 100,000 keyed records over 8 partitions: each arrives exactly once, in order within its
    /// partition, with key, value and headers intact, on the partition murmur2 chose.
    @Test func hundredThousandRecordsExactlyOnceInOrder() async throws {
        let broker = try DevBrokerProcess(topics: ["usage:8"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let total = 100_000
        let partitions: Int32 = 8

        @Sendable func key(_ i: Int) -> [UInt8] { bytes("customer-\(i % 5_000)") }
        @Sendable func value(_ i: Int) -> [UInt8] { bytes("{\"seq\":\(i),\"units\":\(i % 97)}") }
        @Sendable func headers(_ i: Int) -> [KafkaHeader] {
            [KafkaHeader(name: "seq", value: bytes(String(i))), KafkaHeader(name: "kind", value: bytes("usage")),
             KafkaHeader(name: "empty", value: nil)]
        }

        let reports = try await withKafkaThread {
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
            let records = (0..<total).map { KafkaProducerRecord(topic: "usage", key: key($0), value: value($0), headers: headers($0)) }
            return try produceAll(producer, records)
        }
        #expect(reports.count == total)
        let failedReports = reports.values.filter { !$0.succeeded }
        #expect(failedReports.isEmpty)
        let wrongPartition = reports.values.filter { $0.partition != murmur2Partition(key(Int($0.token)), partitions: partitions) }
        #expect(wrongPartition.isEmpty, "murmur2 partitioner: \(wrongPartition.count) records elsewhere")

        struct Outcome: Sendable {
            var seen = [Bool](repeating: false, count: 100_000)
            var received = 0
            var problems: [String] = []
            var eofs = Set<Int32>()
            var assigned: [KafkaTopicPartition] = []
        }
        let outcome = try await withKafkaThread {
            var config = KafkaConsumerConfig(bootstrapServers: bootstrap, groupID: "roundtrip")
            config.autoOffsetReset = .earliest
            let consumer = try KafkaConsumer(config: config)
            try consumer.subscribe(["usage"])
            var o = Outcome()
            var nextOffset = [Int32: Int64]()
            func problem(_ s: String) { if o.problems.count < 20 { o.problems.append(s) } }
            _ = consume(consumer, handle: { batch in
                for event in batch.events {
                    switch event {
                    case .partitionEOF(let tp, _): o.eofs.insert(tp.partition)
                    case .assigned(let tps): o.assigned += tps
                    default: break
                    }
                }
                for record in batch {
                    o.received += 1
                    guard let header = record.headers.first, header.name == "seq", let seqBytes = header.value,
                        let seq = Int(String(decoding: seqBytes, as: UTF8.self)), seq >= 0, seq < total
                    else { problem("bad seq header at \(record.topicPartition)@\(record.offset)"); continue }
                    if o.seen[seq] { problem("duplicate seq \(seq)") }
                    o.seen[seq] = true
                    if record.key.map(Array.init) != key(seq) { problem("key of \(seq)") }
                    if record.value.map(Array.init) != value(seq) { problem("value of \(seq)") }
                    if record.headers != headers(seq) { problem("headers of \(seq): \(record.headers)") }
                    if record.offset != nextOffset[record.partition, default: 0] { problem("\(record.partition): offset \(record.offset), expected \(nextOffset[record.partition, default: 0])") }
                    nextOffset[record.partition] = record.offset + 1
                    if let r = reports[UInt64(seq)], r.partition != record.partition || r.offset != record.offset {
                        problem("seq \(seq) at \(record.partition)@\(record.offset), report said \(r.partition)@\(String(describing: r.offset))")
                    }
                    if record.timestamp == nil { problem("no timestamp on \(seq)") }
                }
            }, until: { o.received >= total && o.eofs.count == Int(partitions) })
            try consumer.close()
            return o
        }
        #expect(outcome.problems.isEmpty, "\(outcome.problems)")
        #expect(outcome.received == total)
        let missing = outcome.seen.indices.filter { !outcome.seen[$0] }
        #expect(missing.isEmpty, "missing: \(missing.prefix(10))")
        #expect(Set(outcome.assigned.map(\.partition)) == Set(0..<partitions))
    }

    /// Commit, stop, start a new consumer in the same group: it resumes exactly at the
    /// committed offsets, except where the rebalance hook chooses another start.
    @Test func newConsumerResumesAtCommittedOffsets() async throws {
        let broker = try DevBrokerProcess(topics: ["resume:4"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let perPartition = 100

        let reports = try await withKafkaThread {
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
            let records = (0..<(4 * perPartition)).map {
                KafkaProducerRecord(topic: "resume", partition: Int32($0 % 4), key: bytes("k\($0)"), value: bytes("v\($0)"))
            }
            return try produceAll(producer, records)
        }
        let failedReports = reports.values.filter { !$0.succeeded }
        #expect(failedReports.isEmpty)

        let config = KafkaConsumerConfig(bootstrapServers: bootstrap, groupID: "resume-group")
        // First consumer: read about 150 records, store + commit what it processed, close.
        let (committedByUs, committedByBroker) = try await withKafkaThread {
            let consumer = try KafkaConsumer(config: config)
            try consumer.subscribe(["resume"])
            var next = [KafkaTopicPartition: Int64]()
            var count = 0
            _ = consume(consumer, maxRecords: 30, handle: { batch in
                for record in batch {
                    next[record.topicPartition] = record.offset + 1
                    count += 1
                }
            }, until: { count >= 150 })
            try consumer.store(next)
            try consumer.commit()
            let fromBroker = try consumer.committed((0..<4).map { KafkaTopicPartition(topic: "resume", partition: $0) })
            try consumer.close()
            return (next, fromBroker)
        }
        #expect(!committedByUs.isEmpty)
        for p in Int32(0)..<4 {
            let tp = KafkaTopicPartition(topic: "resume", partition: p)
            #expect(committedByBroker[tp] == committedByUs[tp].map(KafkaOffset.exact) ?? .invalid)
        }

        // Second consumer: partition 0 starts where the hook says, the rest at the commits.
        let hookStart: Int64 = 42
        let firstOffsets = try await withKafkaThread {
            let consumer = try KafkaConsumer(config: config)
            let p0 = KafkaTopicPartition(topic: "resume", partition: 0)
            try consumer.subscribe(["resume"], listener: KafkaRebalanceListener(partitionsAssigned: { tps in
                tps.contains(p0) ? [p0: .exact(hookStart)] : [:]
            }))
            var first = [KafkaTopicPartition: Int64]()
            var eofs = Set<KafkaTopicPartition>()
            _ = consume(consumer, handle: { batch in
                for record in batch where first[record.topicPartition] == nil { first[record.topicPartition] = record.offset }
                for case .partitionEOF(let tp, _) in batch.events { eofs.insert(tp) }
            }, until: { eofs.count == 4 })
            try consumer.close()
            return first
        }
        for p in Int32(0)..<4 {
            let tp = KafkaTopicPartition(topic: "resume", partition: p)
            let expected = p == 0 ? hookStart : committedByUs[tp] ?? 0
            if expected < Int64(perPartition) {
                #expect(firstOffsets[tp] == expected, "\(tp)")
            } else {
                #expect(firstOffsets[tp] == nil, "\(tp)")
            }
        }
    }

    /// Manual assign at an explicit offset, then seek back.
    @Test func manualAssignAndSeek() async throws {
        let broker = try DevBrokerProcess(topics: ["seek:2"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let result = try await withKafkaThread {
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
            let records = (0..<100).map { KafkaProducerRecord(topic: "seek", partition: Int32($0 % 2), key: nil, value: bytes("v\($0)")) }
            _ = try produceAll(producer, records)

            let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
            let p0 = KafkaTopicPartition(topic: "seek", partition: 0)
            let p1 = KafkaTopicPartition(topic: "seek", partition: 1)
            try consumer.assign([p0: .exact(10), p1: .beginning])
            var offsets: [Int32: [Int64]] = [:]
            var eofs = Set<Int32>()
            _ = consume(consumer, handle: { batch in
                for record in batch { offsets[record.partition, default: []].append(record.offset) }
                for case .partitionEOF(let tp, _) in batch.events { eofs.insert(tp.partition) }
            }, until: { eofs.count == 2 })
            let beforeSeek = offsets
            try consumer.seek([p0: .exact(3)])
            offsets = [:]
            eofs = []
            _ = consume(consumer, handle: { batch in
                for record in batch { offsets[record.partition, default: []].append(record.offset) }
                for case .partitionEOF(let tp, _) in batch.events { eofs.insert(tp.partition) }
            }, until: { eofs.contains(0) })
            let assignment = try consumer.assignment()
            let queried = try consumer.queryWatermarks(p0)
            let cached = try consumer.cachedWatermarks(p0)
            try consumer.close()
            return (beforeSeek, offsets, assignment, queried, cached)
        }
        let (beforeSeek, afterSeek, assignment, queried, cached) = result
        #expect(queried == KafkaWatermarks(low: 0, high: 50))
        #expect(cached.high == 50)
        #expect(beforeSeek[0] == Array(10..<50))
        #expect(beforeSeek[1] == Array(0..<50))
        #expect(afterSeek[0] == Array(3..<50))
        #expect(afterSeek[1] == nil)
        #expect(Set(assignment.map(\.partition)) == [0, 1])
    }

    /// A paused partition yields nothing until resumed; then every record arrives once.
    @Test func pauseAndResume() async throws {
        let broker = try DevBrokerProcess(topics: ["pause:2"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let result = try await withKafkaThread {
            let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
            func produceRound(_ round: Int) throws {
                let records = (0..<200).map {
                    KafkaProducerRecord(topic: "pause", partition: Int32($0 % 2), key: nil, value: bytes("r\(round)-\($0)"))
                }
                let reports = try produceAll(producer, records)
                precondition(reports.values.allSatisfy(\.succeeded))
            }
            try produceRound(1)
            let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
            let p0 = KafkaTopicPartition(topic: "pause", partition: 0)
            let p1 = KafkaTopicPartition(topic: "pause", partition: 1)
            try consumer.assign([p0: .beginning, p1: .beginning])
            var offsets: [Int32: [Int64]] = [:]
            var phase = 0  // 0: before pause, 1: paused, 2: resumed
            var fromPausedWhilePaused = 0
            func record(_ batch: KafkaRecordBatch) {
                for r in batch {
                    offsets[r.partition, default: []].append(r.offset)
                    if phase == 1 && r.partition == 1 { fromPausedWhilePaused += 1 }
                }
            }
            // Small batches so partition 1 still has fetched records queued when paused.
            _ = consume(consumer, maxRecords: 5, handle: record, until: { (offsets[1]?.count ?? 0) > 0 })
            try consumer.pause([p1])
            phase = 1
            try produceRound(2)
            _ = consume(consumer, maxRecords: 5, handle: record, until: { offsets[0]?.last == 199 })
            // A while longer: still nothing from partition 1.
            _ = consume(consumer, deadlineSeconds: 1, handle: record, until: { false })
            try consumer.resume([p1])
            phase = 2
            _ = consume(consumer, handle: record, until: { offsets[1]?.last == 199 })
            try consumer.close()
            return (offsets, fromPausedWhilePaused)
        }
        let (offsets, fromPausedWhilePaused) = result
        #expect(fromPausedWhilePaused == 0)
        #expect(offsets[0] == Array(0..<200))
        #expect(offsets[1] == Array(0..<200))
    }
}
