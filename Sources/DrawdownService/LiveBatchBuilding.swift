import DrawdownCore
import DrawdownKafka
import DrawdownLedger

extension LedgerBatch {
    /// The batch the committer appends for sections whose inputs are still in the consumed
    /// batches (`sources[section.source]`): the same batch, byte for byte, as
    /// `entries(number:previousHash:sections:)` of those sections with the inputs copied out,
    /// written straight from the consumed bytes into one payload buffer sized up front.
    /// `sections` must be in partition order.
    static func entries(
        number: UInt64, previousHash: LedgerHash, pending sections: [PendingSection], sources: [[KafkaRecordBatch]]
    ) -> LedgerBatch {
        var positions: [InputPosition] = []
        var ranges: [SequenceRange] = []
        var minTime = Int64.max, maxTime = Int64.min
        var capacity = 16
        for section in sections {
            capacity += 24 + section.entries.count * 160
            let batches = sources[section.source]
            // Next offset per topic of this partition (nearly always one topic).
            var next: [(topic: String, offset: Int64)] = []
            var last = -1
            for ref in section.inputs {
                let batch = batches[Int(ref.batch)]
                let r = Int(ref.record)
                let topic = batch.topic(at: r)
                if last < 0 || next[last].topic != topic {
                    last = next.firstIndex { $0.topic == topic } ?? { next.append((topic, 0)); return next.count - 1 }()
                }
                next[last].offset = max(next[last].offset, batch.offset(at: r) + 1)
                capacity += 24 + topic.utf8.count + (batch.keyRange(at: r)?.count ?? 0) + (batch.valueRange(at: r)?.count ?? 0)
            }
            for (topic, offset) in next {
                positions.append(InputPosition(topic: topic, partition: section.partition, nextOffset: offset))
            }
            if let first = section.entries.first, let last = section.entries.last {
                ranges.append(SequenceRange(partition: section.partition, firstSeq: first.seq, lastSeq: last.seq))
            }
        }
        positions.sort { ($0.topic, $0.partition) < ($1.topic, $1.partition) }

        // BatchPayload's layout (BatchPayload.encode).
        var writer = BinaryWriter(capacity: capacity)
        writer.byte(BatchPayload.formatVersion)
        writer.varint(sections.count)
        for section in sections {
            let batches = sources[section.source]
            writer.signed(Int64(section.partition))
            writer.varint(section.inputs.count)
            // Inputs come in runs of one consumed batch (in hand-off order): one borrow per run.
            var start = 0
            while start < section.inputs.count {
                let b = section.inputs[start].batch
                var end = start + 1
                while end < section.inputs.count, section.inputs[end].batch == b { end += 1 }
                let batch = batches[Int(b)]
                batch.withUnsafeBufferPointer { bytes in
                    for ref in section.inputs[start..<end] {
                        let r = Int(ref.record)
                        writer.string(batch.topic(at: r))
                        writer.signed(batch.offset(at: r))
                        if let key = batch.keyRange(at: r) {
                            writer.byte(1)
                            writer.data(UnsafeBufferPointer(rebasing: bytes[key]))
                        } else {
                            writer.byte(0)
                        }
                        writer.data(
                            batch.valueRange(at: r).map { UnsafeBufferPointer(rebasing: bytes[$0]) }
                                ?? UnsafeBufferPointer(start: nil, count: 0))
                    }
                }
                start = end
            }
            writer.varint(section.entries.count)
            // Read in place: iterating the array copies each entry (four string retains).
            section.entries.withUnsafeBufferPointer { entries in
                for i in entries.indices {
                    minTime = min(minTime, entries[i].timestamp.nanos)
                    maxTime = max(maxTime, entries[i].timestamp.nanos)
                    entries[i].encode(into: &writer)
                }
            }
        }
        return LedgerBatch(
            number: number, previousHash: previousHash, kind: .entries, positions: positions, sequenceRanges: ranges,
            eventTime: minTime <= maxTime ? EventTimeRange(minNanos: minTime, maxNanos: maxTime) : nil,
            payload: writer.bytes)
    }
}

extension PendingSection {
    /// The section with its inputs copied out of the consumed batches (debug checks, tests).
    func materialized(_ batches: [KafkaRecordBatch]) -> PartitionSection {
        PartitionSection(
            partition: partition,
            inputs: inputs.map { ref in
                let record = batches[Int(ref.batch)][Int(ref.record)]
                return InputRecord(
                    topic: record.topic, offset: record.offset, key: record.key.map { Array($0) },
                    value: record.value.map { Array($0) } ?? [])
            },
            entries: entries)
    }
}
