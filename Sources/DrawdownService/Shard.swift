import Dispatch
import DrawdownCore
import DrawdownKafka
import Synchronization

/// What a shard hands the committer at a batch boundary.
struct ShardTake {
    var sections: [PendingSection] = []
    /// The consumed batches `sections`' inputs refer to (`InputRef.batch` indexes this).
    var batches: [KafkaRecordBatch] = []
    /// The engines as of this take (copy-on-write copies), when asked for a snapshot.
    var engines: [PartitionEngine] = []
    var outputs = OutputBuffer()
    var events = 0
    /// Engine counters of this shard's partitions at the barrier (for progress reports).
    var applied: UInt64 = 0
    var duplicates: UInt64 = 0
    var rejected: UInt64 = 0
    /// Records dead-lettered since the last take, by reason (`RecordApplier.RejectCounts`).
    var rejectsByReason = RecordApplier.RejectCounts()
    /// When the records of this take were handed over: (uptime nanoseconds, record count)
    /// per hand-off, for the consume → durable / delivered latency figures.
    var handOffs: [HandOff] = []
    /// The customers this take's records changed, as of the barrier (when asked for views).
    var views: [ProcessorStatus.DurableCustomer] = []
}

/// An input record a shard applied, still in the consumed batch it came from: the ledger
/// payload is written from the batch's bytes, so no record is copied on its way there.
struct InputRef {
    /// Index in the shard's batches since its last take (`ShardTake.batches`).
    var batch: Int32
    /// Index of the record in that batch.
    var record: Int32
}

/// What a shard applied for one partition since its last take: a `PartitionSection` whose
/// inputs are still in the consumed batches.
struct PendingSection {
    var partition: Int32
    var inputs: [InputRef]
    var entries: [LedgerEntry]
    /// Which take's `batches` the inputs refer to (set by the committer).
    var source = 0
}

/// One hand-off of records to a shard: when, and how many.
struct HandOff: Sendable {
    var nanos: UInt64
    var count: Int
}

/// One shard: a serial queue owning the engines of the partitions `p` with
/// `p % shardCount == index`. The poll thread hands it one consumed batch at a time (the
/// whole `KafkaRecordBatch`, shared copy-on-write, plus the indices of its records); the
/// committer takes its pending sections with `queue.sync`, a barrier behind everything
/// handed over before.
///
/// `@unchecked Sendable`: `slots`, `applier`, `outputs`, `handOffs` and `batches` are only touched by
/// work items running on `queue` (serial); the counters are atomics.
final class Shard: @unchecked Sendable {
    let index: Int
    let queue: DispatchQueue
    /// Records handed to this shard and not yet taken by the committer (back-pressure).
    let pendingEvents = Atomic<Int>(0)
    private var slots: [Slot] = []
    private var slotIndex: [Int32: Int] = [:]
    private var applier: RecordApplier
    private var outputs = OutputBuffer()
    private var handOffs: [HandOff] = []
    /// The batches handed over since the last take (what the slots' `InputRef`s index).
    private var batches: [KafkaRecordBatch] = []
    private let config: EngineConfig
    /// Whether to remember which customers each record changed (for `ProcessorStatus`).
    private let tracksCustomers: Bool
    /// Shared with the committer: records processed by all shards and not yet taken.
    private let uncommitted: SharedCounter

    struct Slot {
        var engine: PartitionEngine
        var inputs: [InputRef] = []
        var entries: [LedgerEntry] = []
        /// Customers changed since the last take (only when the shard tracks them).
        var changed: Set<String> = []

        /// Applies records `run` of `batch` (all of this slot's partition) as one grouped run
        /// (`RecordApplier.apply(run:…)`); `bytes` are the batch's.
        mutating func apply(
            run: ArraySlice<Int>, of batch: KafkaRecordBatch, bytes: UnsafeBufferPointer<UInt8>, batchIndex b: Int32,
            applier: inout RecordApplier, outputs: inout OutputBuffer, tracksCustomers: Bool
        ) {
            for i in run { inputs.append(InputRef(batch: b, record: Int32(i))) }
            // Out of `self` while the engine and entries are lent to the applier.
            var changed: Set<String> = []
            if tracksCustomers { swap(&changed, &self.changed) }
            let start = run.startIndex
            applier.apply(
                run: run.count,
                input: { j in
                    let i = run[start + j]
                    return .raw(
                        RawInput(
                            topic: batch.topic(at: i), offset: batch.offset(at: i),
                            key: batch.keyRange(at: i).map { UnsafeBufferPointer(rebasing: bytes[$0]) },
                            value: batch.valueRange(at: i).map { UnsafeBufferPointer(rebasing: bytes[$0]) }
                                ?? UnsafeBufferPointer(start: nil, count: 0)))
                }, engine: &engine, entries: &entries, outputs: &outputs, wantOutputs: true
            ) { _, customer, written in
                guard tracksCustomers else { return }
                if let customer { changed.insert(customer) }
                for entry in written { changed.insert(entry.customer) }
            }
            if tracksCustomers { swap(&changed, &self.changed) }
        }
    }

    init(
        index: Int, priceBook: PriceBook?, config: EngineConfig, engines: [PartitionEngine], uncommitted: SharedCounter,
        tracksCustomers: Bool = false
    ) {
        self.index = index
        self.queue = DispatchQueue(label: "drawdown.shard.\(index)")
        self.applier = RecordApplier(priceBook: priceBook)
        self.config = config
        self.uncommitted = uncommitted
        self.tracksCustomers = tracksCustomers
        self.applier.tracksCustomers = tracksCustomers
        for engine in engines {
            slotIndex[engine.partition] = slots.count
            slots.append(Slot(engine: engine))
        }
    }

    /// Runs on `queue`: applies records `indices` of `batch`, in order. `handedAt` is when
    /// the poll thread handed them over (one clock read per hand-off, not per record).
    func process(_ batch: KafkaRecordBatch, _ indices: [Int], handedAt: UInt64) {
        dispatchPrecondition(condition: .onQueue(queue))
        let b = Int32(batches.count)
        batches.append(batch)
        batch.withUnsafeBufferPointer { bytes in
            // Runs of consecutive records of one partition, each applied as one grouped run
            // (decoded, warmed and applied `PartitionEngine.warmGroup` at a time).
            var start = indices.startIndex
            while start < indices.endIndex {
                let partition = batch.partition(at: indices[start])
                var end = start + 1
                while end < indices.endIndex, batch.partition(at: indices[end]) == partition { end += 1 }
                let k: Int
                if let known = slotIndex[partition] {
                    k = known
                } else {
                    k = slots.count
                    slotIndex[partition] = k
                    slots.append(Slot(engine: PartitionEngine(partition: partition, config: config)))
                }
                // In place: no copy of the engine.
                slots[k].apply(
                    run: indices[start..<end], of: batch, bytes: bytes, batchIndex: b, applier: &applier, outputs: &outputs,
                    tracksCustomers: tracksCustomers)
                start = end
            }
        }
        handOffs.append(HandOff(nanos: handedAt, count: indices.count))
        uncommitted.value.add(indices.count, ordering: .relaxed)
    }

    /// Runs on `queue`: hands over everything applied since the last take and, when the
    /// shard tracks customers, the views of the customers it changed, as of now.
    func take(withEngines: Bool) -> ShardTake {
        dispatchPrecondition(condition: .onQueue(queue))
        var result = ShardTake()
        if withEngines { result.engines = slots.map(\.engine) }
        for slot in slots {
            result.applied += slot.engine.applied
            result.duplicates += slot.engine.duplicates
            result.rejected += slot.engine.rejected
        }
        for k in slots.indices where !slots[k].inputs.isEmpty {
            result.sections.append(PendingSection(partition: slots[k].engine.partition, inputs: slots[k].inputs, entries: slots[k].entries))
            result.events += slots[k].inputs.count
            // Fresh buffers of about this batch's size: no regrowth by doubling next time.
            let inputCount = slots[k].inputs.count, entryCount = slots[k].entries.count
            slots[k].inputs = []
            slots[k].inputs.reserveCapacity(inputCount)
            slots[k].entries = []
            slots[k].entries.reserveCapacity(entryCount)
            if !slots[k].changed.isEmpty {
                let engine = slots[k].engine
                for customer in slots[k].changed {
                    guard let view = engine.customerView(customer) else { continue }
                    result.views.append(ProcessorStatus.DurableCustomer(view: view, batch: 0, partitionSeq: engine.lastSeq))
                }
                slots[k].changed.removeAll(keepingCapacity: true)
            }
        }
        result.sections.sort { $0.partition < $1.partition }
        swap(&result.outputs, &outputs)
        // Room for about as many outputs as this take had: no regrowth by doubling next time.
        outputs.reserve(records: result.outputs.count, bytes: result.outputs.byteCount)
        swap(&result.batches, &batches)
        swap(&result.handOffs, &handOffs)
        result.rejectsByReason = applier.takeRejectCounts()
        pendingEvents.subtract(result.events, ordering: .relaxed)
        uncommitted.value.subtract(result.events, ordering: .relaxed)
        return result
    }
}

/// An atomic counter shared by reference between the shards and the committer.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}
