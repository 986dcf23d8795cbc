import DrawdownCore
import Synchronization

/// What a running processor shows the outside (the HTTP API, probes): its phase, and every
/// known customer's balances as of the last durable batch.
///
/// The pipeline writes it (`PipelineConfig.status`); readers on any thread take copies.
/// Keeping the balance view costs the shards one `CustomerView` per customer changed in a
/// batch, so a pipeline without a status object, or with one made with
/// `tracksCustomers: false` (phases only, no HTTP API to read balances), skips that work.
public final class ProcessorStatus: Sendable {
    public enum Phase: String, Sendable {
        /// Opening the ledger, verifying it, rebuilding state.
        case recovering
        /// Recovered; waiting for the group to assign partitions.
        case waitingForAssignment = "waiting_for_assignment"
        /// Partitions assigned, consuming.
        case consuming
        /// A stop was requested: finishing the batch in hand.
        case stopping
        case stopped
        case failed
    }

    /// A customer's balances as of a durable batch.
    public struct DurableCustomer: Sendable, Equatable {
        public var view: CustomerView
        /// The ledger batch whose durability this view reflects (the last durable batch
        /// when the view was recorded).
        public var batch: UInt64
        /// The partition's ledger sequence at that point: every entry of this customer up
        /// to it is reflected, none after it.
        public var partitionSeq: UInt64

        public init(view: CustomerView, batch: UInt64, partitionSeq: UInt64) {
            self.view = view
            self.batch = batch
            self.partitionSeq = partitionSeq
        }
    }

    private struct State {
        var phase = Phase.recovering
        var lastDurableBatch: UInt64 = 0
        var assignedPartitions = 0
        var customers: [String: DurableCustomer] = [:]
    }

    private let state = Mutex(State())
    /// Whether the pipeline records customers' balances here (the balance API reads them).
    public let tracksCustomers: Bool

    public init(tracksCustomers: Bool = true) { self.tracksCustomers = tracksCustomers }

    public var phase: Phase { state.withLock { $0.phase } }
    /// Ready for traffic: recovery done, partitions assigned, consuming.
    public var isReady: Bool { state.withLock { $0.phase == .consuming } }
    public var lastDurableBatch: UInt64 { state.withLock { $0.lastDurableBatch } }
    public var assignedPartitions: Int { state.withLock { $0.assignedPartitions } }

    /// The customer as of the last durable batch that changed it; nil when unknown.
    public func customer(_ id: String) -> DurableCustomer? { state.withLock { $0.customers[id] } }

    // MARK: Written by the pipeline

    public func setPhase(_ phase: Phase) { state.withLock { $0.phase = phase } }

    public func setAssignedPartitions(_ count: Int) { state.withLock { $0.assignedPartitions = count } }

    /// After recovery: every customer of the rebuilt state, as of `batch`.
    public func load(_ customers: [DurableCustomer], throughBatch batch: UInt64) {
        var table: [String: DurableCustomer] = [:]
        table.reserveCapacity(customers.count)
        for customer in customers { table[customer.view.customer] = customer }
        state.withLock {
            $0.customers = table
            $0.lastDurableBatch = batch
        }
    }

    /// After batch `batch` is durable: the customers it changed, as of its barrier.
    public func recordDurable(batch: UInt64, customers: [DurableCustomer]) {
        state.withLock {
            for customer in customers { $0.customers[customer.view.customer] = customer }
            $0.lastDurableBatch = max($0.lastDurableBatch, batch)
        }
    }
}

/// The names of the metrics the pipeline reports through swift-metrics (exported by
/// `drawdown run --http` as Prometheus text). Counters end in `_total`. No customer ids in
/// dimensions.
public enum MetricNames {
    /// Records taken from Kafka and handed to shards. Dimension: none.
    public static let recordsConsumed = "drawdown_records_consumed_total"
    /// Messages the engine applied.
    public static let recordsApplied = "drawdown_records_applied_total"
    /// Exact resends caught by dedupe.
    public static let duplicates = "drawdown_duplicates_total"
    /// Keys that came back with different content (SPEC §3, `conflict`).
    public static let conflicts = "drawdown_conflicts_total"
    /// Records rejected, by `reason` (SPEC §4 reject reason) — dead-lettered.
    public static let rejected = "drawdown_rejected_total"
    public static let ledgerBatches = "drawdown_ledger_batches_total"
    public static let ledgerBytes = "drawdown_ledger_bytes_total"
    /// Seconds per fdatasync of a ledger batch (timer).
    public static let ledgerFsync = "drawdown_ledger_fsync_seconds"
    /// Input records per ledger batch (recorder).
    public static let batchRecords = "drawdown_batch_records"
    /// Records behind the high watermark, dimensions `topic`, `partition` (gauge).
    public static let consumerLag = "drawdown_consumer_lag"
    /// Records handed to a shard and not yet committed, dimension `shard` (gauge).
    public static let shardQueueDepth = "drawdown_shard_queue_depth"
    /// Output records whose delivery failed (they are sent again).
    public static let produceErrors = "drawdown_produce_errors_total"
    /// Output records delivered, dimension `kind` (`balance_change`, `alert`, `dead_letter`).
    public static let outputsPublished = "drawdown_outputs_published_total"
    /// Seconds the last recovery took (gauge).
    public static let recoverySeconds = "drawdown_recovery_seconds"
}
