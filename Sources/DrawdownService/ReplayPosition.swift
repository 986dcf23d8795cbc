import DrawdownCore
import DrawdownLedger

/// A point in the ledger where a replay starts (`--from`) or ends (`--to`). Every form
/// resolves to a batch boundary: "the state before batch B" (docs/replay.md).
public enum ReplayPosition: Equatable, Sendable {
    /// Batch 1: the state before anything.
    case beginning
    /// Before this ledger batch (`batch:N` or `N`).
    case batch(UInt64)
    /// Before the first batch that holds a record at or past one of these offsets
    /// (`0:1200,1:877`, or `usage:0:1200` to name the topic).
    case offsets([InputPartition: Int64])
    /// Before the first batch with an entry whose event time is at or after this instant
    /// (RFC 3339, e.g. `2026-11-24T00:00:00Z`), through the ledger's event-time index.
    case time(EventTime)
    /// After the last batch (the default end).
    case end

    /// Parses a position; offsets without a topic are for `defaultTopic`.
    public static func parse(_ text: String, defaultTopic: String) throws -> ReplayPosition {
        func bad(_ why: String) -> ReplayError {
            .refused(
                "position \"\(text)\": \(why) (expected beginning, end, batch:N, P:OFFSET[,P:OFFSET…], TOPIC:P:OFFSET, or an RFC 3339 time)"
            )
        }
        switch text {
        case "beginning": return .beginning
        case "end": return .end
        default: break
        }
        if text.hasPrefix("batch:") || text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            let digits = text.hasPrefix("batch:") ? String(text.dropFirst(6)) : text
            guard let n = UInt64(digits), n >= 1 else { throw bad("not a batch number ≥ 1") }
            return .batch(n)
        }
        if let time = EventTime.parse(text) { return .time(time) }
        var offsets: [InputPartition: Int64] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let topic: String, partitionText: String, offsetText: String
            switch parts.count {
            case 2: (topic, partitionText, offsetText) = (defaultTopic, parts[0], parts[1])
            case 3: (topic, partitionText, offsetText) = (parts[0], parts[1], parts[2])
            default: throw bad("\"\(item)\" is not PARTITION:OFFSET")
            }
            guard !topic.isEmpty, let p = Int32(partitionText), p >= 0, let o = Int64(offsetText), o >= 0 else {
                throw bad("\"\(item)\" is not PARTITION:OFFSET with numbers ≥ 0")
            }
            let key = InputPartition(topic: topic, partition: p)
            guard offsets[key] == nil else { throw bad("\(topic)/\(p) given twice") }
            offsets[key] = o
        }
        return .offsets(offsets)
    }

    /// The batch B such that this position is "the state before batch B", 1…last + 1.
    public func resolve(in ledger: LedgerStore) throws -> UInt64 {
        let last = ledger.lastBatchNumber
        switch self {
        case .beginning:
            return 1
        case .end:
            return last + 1
        case .batch(let n):
            guard n <= last + 1 else {
                throw ReplayError.refused("batch \(n) is past the ledger's end (last batch \(last))")
            }
            return n
        case .offsets(let offsets):
            // The first batch that reads a record at or past a given offset: its next offset for
            // that input is past it (the batches before it stopped at or before the offset).
            let reader = ledger.batches(from: 1)
            while let batch = try reader.next() {
                for p in batch.positions {
                    if let given = offsets[InputPartition(topic: p.topic, partition: p.partition)], p.nextOffset > given {
                        return batch.number
                    }
                }
            }
            return last + 1
        case .time(let time):
            let reader = ledger.batches(from: ledger.firstBatchNumber(forEventTimeAtLeast: time.nanos))
            while let batch = try reader.next() {
                if let range = batch.eventTime, range.maxNanos >= time.nanos { return batch.number }
            }
            return last + 1
        }
    }
}
