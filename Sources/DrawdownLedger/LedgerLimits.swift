/// Every size, count and tuning knob of the ledger's storage, in one place.
///
/// Names end in their unit or in `Max`. The defaults are what `drawdown run` uses; tests shrink
/// them (small segments to exercise rolling, a small sparse-index stride).
public struct LedgerLimits: Sendable, Equatable {
    /// A segment file is closed and a new one started once appending the next record would make it
    /// larger than this. A single record larger than this still goes into a segment of its own.
    public var segmentBytesMax: Int64
    /// The largest uncompressed batch body accepted (and decompressed on read).
    public var batchBodyBytesMax: Int
    /// The largest opaque payload inside one batch.
    public var payloadBytesMax: Int
    /// The most input positions one batch may carry.
    public var positionsPerBatchMax: Int
    /// The most per-partition sequence ranges one batch may carry.
    public var sequenceRangesPerBatchMax: Int
    /// The longest topic name, in UTF-8 bytes (Kafka's own limit is 249).
    public var topicNameBytesMax: Int
    /// The in-memory sparse index keeps one entry every this many batches.
    public var sparseIndexStrideBatches: UInt64
    /// The largest uncompressed snapshot accepted (and decompressed on read).
    public var snapshotBytesMax: Int
    /// How many snapshots are kept; older ones are deleted after a new one is durable.
    public var snapshotsRetainedMax: Int
    /// zstd compression level for batches and snapshots (1 = fastest; 3 is zstd's default).
    public var zstdLevel: Int32

    public init(
        segmentBytesMax: Int64 = 64 << 20,
        batchBodyBytesMax: Int = 256 << 20,
        payloadBytesMax: Int = 255 << 20,
        positionsPerBatchMax: Int = 65_536,
        sequenceRangesPerBatchMax: Int = 65_536,
        topicNameBytesMax: Int = 249,
        sparseIndexStrideBatches: UInt64 = 64,
        snapshotBytesMax: Int = 2 << 30,
        snapshotsRetainedMax: Int = 3,
        zstdLevel: Int32 = 1
    ) {
        precondition(segmentBytesMax > 0 && batchBodyBytesMax > 0 && payloadBytesMax > 0)
        precondition(payloadBytesMax <= batchBodyBytesMax)
        precondition(batchBodyBytesMax <= Int(UInt32.max) - LedgerRecordHeader.byteCount)
        precondition(sparseIndexStrideBatches >= 1 && snapshotsRetainedMax >= 1)
        precondition(topicNameBytesMax >= 1 && topicNameBytesMax <= Int(UInt16.max))
        self.segmentBytesMax = segmentBytesMax
        self.batchBodyBytesMax = batchBodyBytesMax
        self.payloadBytesMax = payloadBytesMax
        self.positionsPerBatchMax = positionsPerBatchMax
        self.sequenceRangesPerBatchMax = sequenceRangesPerBatchMax
        self.topicNameBytesMax = topicNameBytesMax
        self.sparseIndexStrideBatches = sparseIndexStrideBatches
        self.snapshotBytesMax = snapshotBytesMax
        self.snapshotsRetainedMax = snapshotsRetainedMax
        self.zstdLevel = zstdLevel
    }

    public static let `default` = LedgerLimits()
}
