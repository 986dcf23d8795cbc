import Metrics
import DrawdownCore
import DrawdownKafka

/// The pipeline's swift-metrics handles (names in `MetricNames`), made once per run so the
/// hot paths never look a metric up. Every call aggregates a hand-off or a batch, never one
/// record. With no metrics backend bootstrapped they are no-ops.
///
/// `Sendable`: the handles are swift-metrics classes documented as thread-safe; the
/// per-partition lag gauges are made and used by the poll thread only (`LagGauges`).
final class PipelineMetrics: Sendable {
    let factory: any MetricsFactory
    let recordsConsumed: Counter
    let recordsApplied: Counter
    let duplicates: Counter
    let conflicts: Counter
    /// By `RejectReason`, in `allCases` order.
    let rejected: [Counter]
    let ledgerBatches: Counter
    let ledgerBytes: Counter
    let ledgerFsync: Timer
    let batchRecords: Recorder
    let shardQueueDepth: [Gauge]
    let produceErrors: Counter
    let outputsBalanceChange: Counter
    let outputsAlert: Counter
    let outputsDeadLetter: Counter
    let recoverySeconds: Gauge

    /// `factory`: nil for the process's bootstrapped one (`MetricsSystem.factory`).
    init(shards: Int, factory: (any MetricsFactory)?) {
        let f = factory ?? MetricsSystem.factory
        self.factory = f
        recordsConsumed = Counter(label: MetricNames.recordsConsumed, factory: f)
        recordsApplied = Counter(label: MetricNames.recordsApplied, factory: f)
        duplicates = Counter(label: MetricNames.duplicates, factory: f)
        conflicts = Counter(label: MetricNames.conflicts, factory: f)
        rejected = RejectReason.allCases.map { Counter(label: MetricNames.rejected, dimensions: [("reason", $0.rawValue)], factory: f) }
        ledgerBatches = Counter(label: MetricNames.ledgerBatches, factory: f)
        ledgerBytes = Counter(label: MetricNames.ledgerBytes, factory: f)
        ledgerFsync = Timer(label: MetricNames.ledgerFsync, factory: f)
        batchRecords = Recorder(label: MetricNames.batchRecords, factory: f)
        shardQueueDepth = (0..<shards).map { Gauge(label: MetricNames.shardQueueDepth, dimensions: [("shard", String($0))], factory: f) }
        produceErrors = Counter(label: MetricNames.produceErrors, factory: f)
        outputsBalanceChange = Counter(label: MetricNames.outputsPublished, dimensions: [("kind", "balance_change")], factory: f)
        outputsAlert = Counter(label: MetricNames.outputsPublished, dimensions: [("kind", "alert")], factory: f)
        outputsDeadLetter = Counter(label: MetricNames.outputsPublished, dimensions: [("kind", "dead_letter")], factory: f)
        recoverySeconds = Gauge(label: MetricNames.recoverySeconds, factory: f)
    }

    /// Counts the dead letters of one batch.
    func record(rejects: RecordApplier.RejectCounts) {
        for (i, count) in rejects.counts.enumerated() where count > 0 { rejected[i].increment(by: count) }
        let conflictCount = rejects.counts[RecordApplier.RejectCounts.reasons.firstIndex(of: .conflict)!]
        if conflictCount > 0 { conflicts.increment(by: conflictCount) }
    }

    /// Counts the outputs of one delivered batch.
    func record(delivered outputs: OutputBuffer) {
        var changes = 0, alerts = 0, deadLetters = 0
        for output in outputs.spans {
            switch output.kind {
            case .balanceChange: changes += 1
            case .alert: alerts += 1
            case .deadLetter: deadLetters += 1
            }
        }
        if changes > 0 { outputsBalanceChange.increment(by: changes) }
        if alerts > 0 { outputsAlert.increment(by: alerts) }
        if deadLetters > 0 { outputsDeadLetter.increment(by: deadLetters) }
    }
}

/// Consumer lag gauges per input partition, kept by the poll thread: high watermark (as the
/// consumer last saw it in a fetch) minus the next offset handed over.
struct LagGauges {
    private var gauges: [KafkaTopicPartition: Gauge] = [:]

    let factory: any MetricsFactory

    init(factory: any MetricsFactory) { self.factory = factory }

    mutating func update(consumer: KafkaConsumer, assigned: Set<KafkaTopicPartition>, next: [KafkaTopicPartition: Int64]) {
        for tp in assigned {
            guard let marks = try? consumer.cachedWatermarks(tp), marks.high >= 0 else { continue }
            let position = next[tp] ?? marks.low
            let gauge: Gauge
            if let known = gauges[tp] {
                gauge = known
            } else {
                gauge = Gauge(
                    label: MetricNames.consumerLag, dimensions: [("topic", tp.topic), ("partition", String(tp.partition))],
                    factory: factory)
                gauges[tp] = gauge
            }
            gauge.record(max(0, marks.high - max(position, marks.low)))
        }
    }
}
