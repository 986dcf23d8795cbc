/// What a batch holds, beyond its input positions: engine entries, a correction (re-rating
/// replay), or a marker (no entries; e.g. offsets advanced over only duplicates and rejects).
public enum LedgerBatchKind: UInt8, Sendable, CaseIterable {
    case entries = 1
    case correction = 2
    case marker = 3
}

/// The next input offset to read from one partition of one topic (last processed + 1).
public struct InputPosition: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public var nextOffset: Int64

    public init(topic: String, partition: Int32, nextOffset: Int64) {
        self.topic = topic
        self.partition = partition
        self.nextOffset = nextOffset
    }
}

/// The ledger sequence numbers (inclusive, non-empty) a batch wrote for one partition.
public struct SequenceRange: Hashable, Sendable {
    public var partition: Int32
    public var firstSeq: UInt64
    public var lastSeq: UInt64

    public init(partition: Int32, firstSeq: UInt64, lastSeq: UInt64) {
        self.partition = partition
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
    }
}

/// The smallest and largest event time (nanoseconds since the Unix epoch) in a batch.
public struct EventTimeRange: Hashable, Sendable {
    public var minNanos: Int64
    public var maxNanos: Int64

    public init(minNanos: Int64, maxNanos: Int64) {
        self.minNanos = minNanos
        self.maxNanos = maxNanos
    }
}

/// One durable batch of the ledger. The storage layer does not look inside `payload` (the
/// engine's encoded entries, dedupe keys and state changes); it checks everything else.
public struct LedgerBatch: Hashable, Sendable {
    /// 1, 2, 3, … with no gaps.
    public var number: UInt64
    /// The chain hash of batch `number - 1` (`LedgerHash.zero` for batch 1).
    public var previousHash: LedgerHash
    public var kind: LedgerBatchKind
    /// The next offset of every input partition this batch covers; at most one per (topic, partition).
    public var positions: [InputPosition]
    /// Per-partition sequence numbers written; at most one per partition; may be empty.
    public var sequenceRanges: [SequenceRange]
    /// Absent when the batch carries no timed events.
    public var eventTime: EventTimeRange?
    public var payload: [UInt8]

    public init(
        number: UInt64, previousHash: LedgerHash, kind: LedgerBatchKind = .entries,
        positions: [InputPosition] = [], sequenceRanges: [SequenceRange] = [],
        eventTime: EventTimeRange? = nil, payload: [UInt8] = []
    ) {
        self.number = number
        self.previousHash = previousHash
        self.kind = kind
        self.positions = positions
        self.sequenceRanges = sequenceRanges
        self.eventTime = eventTime
        self.payload = payload
    }

    /// The properties every batch has on its own, checked before writing and after reading back.
    /// Returns what is wrong, or nil.
    public func problem(limits: LedgerLimits) -> String? {
        if number == 0 { return "batch number 0 (numbers start at 1)" }
        if number == 1, previousHash != .zero { return "batch 1 must follow the zero hash" }
        if positions.count > limits.positionsPerBatchMax {
            return "\(positions.count) input positions, more than \(limits.positionsPerBatchMax)"
        }
        var seenInputs = Set<InputPartition>()
        for p in positions {
            let topicBytes = p.topic.utf8.count
            if topicBytes == 0 || topicBytes > limits.topicNameBytesMax {
                return "topic name of \(topicBytes) bytes (1…\(limits.topicNameBytesMax) allowed)"
            }
            if p.partition < 0 { return "negative partition \(p.partition) of topic \(p.topic)" }
            if p.nextOffset < 0 { return "negative next offset \(p.nextOffset) for \(p.topic)/\(p.partition)" }
            if !seenInputs.insert(InputPartition(topic: p.topic, partition: p.partition)).inserted {
                return "input \(p.topic)/\(p.partition) listed twice"
            }
        }
        if sequenceRanges.count > limits.sequenceRangesPerBatchMax {
            return "\(sequenceRanges.count) sequence ranges, more than \(limits.sequenceRangesPerBatchMax)"
        }
        var seenPartitions = Set<Int32>()
        for r in sequenceRanges {
            if r.partition < 0 { return "negative partition \(r.partition) in a sequence range" }
            if r.firstSeq == 0 || r.firstSeq > r.lastSeq {
                return "sequence range \(r.firstSeq)…\(r.lastSeq) of partition \(r.partition) is empty or starts at 0"
            }
            if !seenPartitions.insert(r.partition).inserted {
                return "partition \(r.partition) has two sequence ranges"
            }
        }
        if let t = eventTime, t.minNanos > t.maxNanos {
            return "event time range \(t.minNanos)…\(t.maxNanos) is inverted"
        }
        if payload.count > limits.payloadBytesMax {
            return "payload of \(payload.count) bytes, more than \(limits.payloadBytesMax)"
        }
        return nil
    }
}

/// A (topic, partition) pair: the key of an input position.
public struct InputPartition: Hashable, Sendable, Comparable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: InputPartition, b: InputPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}
