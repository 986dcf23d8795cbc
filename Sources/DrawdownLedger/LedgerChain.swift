/// What the ledger so far says the next batch must agree with: its number, the hash it follows,
/// where each partition's sequence continues, and that input offsets never go back.
/// Checked before appending a batch and again for every batch read back during recovery.
struct LedgerChain {
    private(set) var lastNumber: UInt64 = 0
    private(set) var lastHash: LedgerHash = .zero
    private(set) var lastSeqByPartition: [Int32: UInt64] = [:]
    private(set) var nextOffsets: [InputPartition: Int64] = [:]
    /// The largest event time of any batch so far.
    private(set) var maxEventTimeNanos: Int64?
    /// False after verification skipped damage: the next batch becomes the new baseline.
    private var baselineKnown = true
    /// After skipped damage, a partition first seen again may continue from any sequence.
    private var unknownPartitionsMayContinue = false

    func problem(with batch: LedgerBatch) -> String? {
        guard baselineKnown else { return nil }
        if batch.number != lastNumber + 1 {
            return "batch number \(batch.number) where \(lastNumber + 1) was expected"
        }
        if batch.previousHash != lastHash {
            return "broken chain: previous hash \(batch.previousHash) but batch \(lastNumber) hashes to \(lastHash)"
        }
        for r in batch.sequenceRanges {
            let last = lastSeqByPartition[r.partition]
            if last == nil && unknownPartitionsMayContinue { continue }
            let expected = (last ?? 0) + 1
            if r.firstSeq != expected {
                return "partition \(r.partition) sequence starts at \(r.firstSeq) where \(expected) was expected"
            }
        }
        for p in batch.positions {
            if let before = nextOffsets[InputPartition(topic: p.topic, partition: p.partition)], p.nextOffset < before {
                return "input \(p.topic)/\(p.partition) goes back from offset \(before) to \(p.nextOffset)"
            }
        }
        return nil
    }

    mutating func advance(with batch: LedgerBatch, hash: LedgerHash) {
        lastNumber = batch.number
        lastHash = hash
        for r in batch.sequenceRanges { lastSeqByPartition[r.partition] = r.lastSeq }
        for p in batch.positions { nextOffsets[InputPartition(topic: p.topic, partition: p.partition)] = p.nextOffset }
        if let t = batch.eventTime { maxEventTimeNanos = max(maxEventTimeNanos ?? t.maxNanos, t.maxNanos) }
        baselineKnown = true
    }

    /// After damage that verification skipped: accept whatever comes next as the baseline.
    mutating func forgetBaseline() {
        baselineKnown = false
        unknownPartitionsMayContinue = true
        lastSeqByPartition.removeAll()
        nextOffsets.removeAll()
    }
}

/// Where a segment file is and which batches it starts with.
struct SegmentInfo {
    let firstBatch: UInt64
    let path: String
}

/// An in-memory index with one entry every `sparseIndexStrideBatches` batches: where the batch's
/// record starts, and the largest event time of any batch up to it (for the timestamp lookup).
struct SparseIndex {
    struct Entry {
        let batch: UInt64
        let segment: Int
        let offset: Int64
        let maxEventTimeThroughNanos: Int64?
    }

    let strideBatches: UInt64
    private(set) var entries: [Entry] = []

    init(strideBatches: UInt64) {
        self.strideBatches = strideBatches
    }

    mutating func note(batch: UInt64, segment: Int, offset: Int64, maxEventTimeThroughNanos: Int64?) {
        guard (batch - 1) % strideBatches == 0 else { return }
        entries.append(Entry(batch: batch, segment: segment, offset: offset, maxEventTimeThroughNanos: maxEventTimeThroughNanos))
    }

    /// The last entry at or before `batch` in `segment`, if any.
    func entry(atOrBefore batch: UInt64, inSegment segment: Int) -> Entry? {
        // Binary search for the last entry with entry.batch <= batch.
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].batch <= batch { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, entries[lo - 1].segment == segment else { return nil }
        return entries[lo - 1]
    }

    /// A batch number from which a scan finds every batch whose largest event time is ≥ `nanos`:
    /// one past the last indexed batch whose running maximum is still below `nanos`.
    func scanStart(forEventTimeAtLeast nanos: Int64) -> UInt64 {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if let m = entries[mid].maxEventTimeThroughNanos, m >= nanos { hi = mid } else { lo = mid + 1 }
        }
        return lo == 0 ? 1 : entries[lo - 1].batch + 1
    }
}
