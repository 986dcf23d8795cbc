import DrawdownCore
import DrawdownLedger

extension LedgerBatch {
    /// An entries batch of `sections` (sorted by partition) the way the committer closes one:
    /// each input's next offset (last record + 1), each partition's sequence range, and the
    /// event-time range of the entries. The committer closes every batch with it; the replay
    /// tests and benchmark use it to write data directories in-process.
    public static func entries(number: UInt64, previousHash: LedgerHash, sections: [PartitionSection]) -> LedgerBatch {
        var next: [InputPartition: Int64] = [:]
        var ranges: [SequenceRange] = []
        var minTime = Int64.max, maxTime = Int64.min
        for section in sections {
            for input in section.inputs {
                let key = InputPartition(topic: input.topic, partition: section.partition)
                next[key] = max(next[key] ?? 0, input.offset + 1)
            }
            if let first = section.entries.first, let last = section.entries.last {
                ranges.append(SequenceRange(partition: section.partition, firstSeq: first.seq, lastSeq: last.seq))
            }
            for entry in section.entries {
                minTime = min(minTime, entry.timestamp.nanos)
                maxTime = max(maxTime, entry.timestamp.nanos)
            }
        }
        return LedgerBatch(
            number: number, previousHash: previousHash, kind: .entries,
            positions: next.sorted { $0.key < $1.key }.map { InputPosition(topic: $0.key.topic, partition: $0.key.partition, nextOffset: $0.value) },
            sequenceRanges: ranges,
            eventTime: minTime <= maxTime ? EventTimeRange(minNanos: minTime, maxNanos: maxTime) : nil,
            payload: BatchPayload(sections: sections).encode())
    }
}
