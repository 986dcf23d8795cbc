import Dispatch
import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation
import Logging
import Metrics
import Synchronization

/// Delivers the outputs of durable batches on its own thread, overlapped with the
/// committer appending the next ones.
///
/// - Jobs arrive in batch order, only after their batch is durable (`enqueue`), and their
///   outputs are sent in that order, so the idempotent producer keeps them in order per
///   output partition (per customer).
/// - A batch is *published* once every output of it and of every earlier batch has a
///   successful delivery report; then `<data-dir>/published` is replaced with its number
///   (one replace for all the batches completed together: the marker is monotone and
///   only ever says "every output of batches ≤ N delivered"), the batch's `batchPublished`
///   callback runs, its offsets are committed to Kafka (advisory), and its snapshot, if it
///   carries one, is written.
/// - A record whose delivery failed is sent again (after 100 ms) until it succeeds.
/// - At most `publishBatchesInFlightMax` batches wait here; `enqueue` blocks beyond that, so
///   a slow broker slows the committer, which pauses consumption (back-pressure).
///
/// `@unchecked Sendable`: `active`, `nextToken`, `lastCommit` and `topicHandles` are only touched on the
/// publisher thread; everything shared is an atomic, a `Mutex`, or a `Sendable` handle.
final class Publisher: @unchecked Sendable {
    struct Snapshot {
        var engines: [PartitionEngine]
        var chainHash: LedgerHash
    }

    struct Job {
        var number: UInt64
        var outputs: OutputBuffer
        /// Next offsets to commit once published (empty: none).
        var offsets: [KafkaTopicPartition: Int64] = [:]
        /// Reported through `batchPublished` (nil: re-sent outputs of recovered batches).
        var progress: BatchProgress?
        var snapshot: Snapshot?
        var handOffs: [HandOff] = []
    }

    /// A job whose outputs were sent; delivery reports count down `remaining`.
    private struct Active {
        var job: Job
        var firstToken: UInt64
        var remaining: Int
        var failed: [Int] = []
        var retryAt: UInt64 = 0
    }

    let config: PipelineConfig
    let logger: Logger
    let producer: KafkaProducer
    /// nil while re-sending recovered outputs before the consumer exists.
    let consumer: KafkaConsumer?
    let snapshots: SnapshotStore
    let metrics: PipelineMetrics
    let stats: SharedRunStats
    private let incoming = Mutex<[Job]>([])
    private let wake = DispatchSemaphore(value: 0)
    private let jobsWaiting = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let failureMessage = Mutex<String?>(nil)
    /// The highest batch whose outputs (and every earlier batch's) are delivered.
    let publishedThrough: Atomic<UInt64>
    private var active: [Active] = []
    private var nextToken: UInt64 = 1
    private var lastCommit: UInt64 = 0
    private var uncommittedOffsets: [KafkaTopicPartition: Int64] = [:]
    /// Producer handles of the three output topics (made on first use, on this thread).
    private var topicHandles: [KafkaProducer.Topic?] = [nil, nil, nil]

    init(
        config: PipelineConfig, logger: Logger, producer: KafkaProducer, consumer: KafkaConsumer?, snapshots: SnapshotStore,
        metrics: PipelineMetrics, stats: SharedRunStats, publishedThrough: UInt64
    ) {
        self.config = config
        self.logger = logger
        self.producer = producer
        self.consumer = consumer
        self.snapshots = snapshots
        self.metrics = metrics
        self.stats = stats
        self.publishedThrough = Atomic(publishedThrough)
    }

    var failure: String? { failureMessage.withLock { $0 } }

    /// Starts the publisher thread.
    func start() {
        let thread = Thread { [self] in
            runLoop()
            done.signal()
        }
        thread.name = "drawdown-publisher"
        thread.start()
    }

    /// Hands over a durable batch. Blocks while `publishBatchesInFlightMax` batches wait
    /// (returns at once if the publisher failed).
    func enqueue(_ job: Job) {
        while jobsWaiting.load(ordering: .acquiring) >= max(1, config.publishBatchesInFlightMax), failure == nil {
            usleep(1_000)  // a batch's delivery takes tens of ms: 1 ms steps cost nothing in latency
        }
        jobsWaiting.add(1, ordering: .acquiringAndReleasing)
        incoming.withLock { $0.append(job) }
        wake.signal()
    }

    /// Waits until every batch handed over is published, then stops the thread.
    func finish() {
        stopping.store(true, ordering: .releasing)
        wake.signal()
        done.wait()
    }

    /// Waits until batch `number` is published or the publisher failed.
    func waitPublished(through number: UInt64) throws {
        while publishedThrough.load(ordering: .acquiring) < number {
            if let failure { throw PipelineError(failure) }
            usleep(1_000)
        }
    }

    // MARK: - The publisher thread

    private func runLoop() {
        do {
            while true {
                let finishing = stopping.load(ordering: .acquiring)
                let new = incoming.withLock { jobs in
                    defer { jobs.removeAll(keepingCapacity: true) }
                    return jobs
                }
                for job in new { try start(job) }
                try retryFailed()
                if active.isEmpty {
                    if finishing, incoming.withLock({ $0.isEmpty }) { break }
                    _ = wake.wait(timeout: .now() + .milliseconds(100))
                    continue
                }
                handle(producer.poll(timeoutMs: 5))
                try complete()
            }
            try commitOffsets(force: true)
        } catch {
            failureMessage.withLock { $0 = "\(error)" }
            logger.error("publishing stopped: \(error)")
        }
    }

    private func topic(_ kind: OutputRecord.Kind) -> String {
        switch kind {
        case .balanceChange: config.balanceTopic
        case .alert: config.alertTopic
        case .deadLetter: config.deadLetterTopic
        }
    }

    private func start(_ job: Job) throws {
        let first = nextToken
        nextToken += UInt64(job.outputs.count)
        active.append(Active(job: job, firstToken: first, remaining: job.outputs.count))
        try send(active.count - 1, job.outputs.indices)
    }

    private func topicHandle(_ kind: OutputRecord.Kind) throws -> KafkaProducer.Topic {
        let k = kind == .balanceChange ? 0 : kind == .alert ? 1 : 2
        if let known = topicHandles[k] { return known }
        let made = try producer.topic(topic(kind))
        topicHandles[k] = made
        return made
    }

    /// Sends outputs `indices` of active job `a`, waiting while the client's queue is full.
    /// Records without headers (all but dead letters) go from the job's buffer to the
    /// producer in place.
    private func send(_ a: Int, _ indices: some Sequence<Int>) throws {
        let outputs = active[a].job.outputs
        let firstToken = active[a].firstToken
        try outputs.withUnsafeBytes { bytes in
            for i in indices {
                let span = outputs.spans[i]
                let token = firstToken + UInt64(i)
                let topicHandle = try topicHandle(span.kind)
                let record: KafkaProducerRecord? = span.headers < 0 && bytes.baseAddress != nil ? nil : {
                    let output = outputs[i]
                    return KafkaProducerRecord(topic: topicHandle.name, key: output.key, value: output.value, headers: output.headers)
                }()
                while true {
                    do throws(KafkaError) {
                        if let record {
                            try producer.send(record, token: token)
                        } else {
                            let key = span.keyLength < 0 ? nil : UnsafeRawBufferPointer(start: bytes.baseAddress! + span.keyStart, count: span.keyLength)
                            let value = UnsafeRawBufferPointer(start: bytes.baseAddress! + span.valueStart, count: span.valueLength)
                            try producer.send(topicHandle, key: key, value: value, token: token)
                        }
                        break
                    } catch {
                        guard error.code == .queueFull || error.isRetriable else {
                            throw PipelineError("producing to \(topicHandle.name): \(error)")
                        }
                        handle(producer.poll(timeoutMs: 10))  // the client's queue is full: let deliveries drain
                    }
                }
            }
        }
    }

    private func retryFailed() throws {
        let now = DispatchTime.now().uptimeNanoseconds
        for a in active.indices where !active[a].failed.isEmpty && active[a].retryAt <= now {
            let indices = active[a].failed.sorted()
            active[a].failed = []
            try send(a, indices)
        }
    }

    private func handle(_ reports: [KafkaDeliveryReport]) {
        guard !reports.isEmpty else { return }
        var errors = 0
        var firstError: KafkaError?
        for report in reports {
            // The job holding the token: the last one starting at or before it.
            guard let a = active.lastIndex(where: { $0.firstToken <= report.token }) else { continue }
            if report.succeeded {
                active[a].remaining -= 1
            } else {
                errors += 1
                if firstError == nil { firstError = report.error }
                if active[a].failed.isEmpty { active[a].retryAt = DispatchTime.now().uptimeNanoseconds + 100_000_000 }
                active[a].failed.append(Int(report.token - active[a].firstToken))
            }
        }
        if errors > 0 {
            stats.value.withLock { $0.produceErrors += errors }
            metrics.produceErrors.increment(by: errors)
            logger.warning(
                "\(errors) output record(s) not delivered (\(firstError.map { "\($0)" } ?? "?")); sending them again")
        }
    }

    /// Publishes the leading jobs whose every output is delivered.
    private func complete() throws {
        var count = 0
        while count < active.count, active[count].remaining == 0, active[count].failed.isEmpty { count += 1 }
        guard count > 0 else { return }
        let completed = active.prefix(count).map(\.job)
        active.removeFirst(count)
        let last = completed[count - 1].number
        try DataDirectoryFiles.writePublished(last, directory: config.dataDirectory, io: config.storageIO)
        let deliveredAt = DispatchTime.now().uptimeNanoseconds
        publishedThrough.store(last, ordering: .releasing)
        jobsWaiting.subtract(count, ordering: .acquiringAndReleasing)
        stats.value.withLock {
            $0.fsyncs += 1
            for job in completed {
                $0.outputs += job.outputs.count
                $0.delivered.add(job.handOffs, at: deliveredAt)
            }
        }
        for job in completed {
            metrics.record(delivered: job.outputs)
            for (tp, next) in job.offsets { uncommittedOffsets[tp] = max(uncommittedOffsets[tp] ?? 0, next) }
            if let report = config.batchPublished, let progress = job.progress { report(progress) }
        }
        try commitOffsets(force: false)
        // The marker now covers these batches: a snapshot of one of them may be written.
        if let job = completed.last(where: { $0.snapshot != nil }), let snapshot = job.snapshot {
            do {
                let file = try snapshots.write(
                    EngineSnapshots.encode(snapshot.engines), coversThroughBatch: job.number, chainHash: snapshot.chainHash)
                logger.debug("snapshot of \(snapshot.engines.count) partition(s) through batch \(job.number): \(file)")
            } catch {
                // The ledger is durable without it; the next snapshot (or a longer replay) covers it.
                logger.warning("snapshot through batch \(job.number) failed: \(error)")
            }
        }
    }

    /// Commits the offsets of published batches to Kafka, at most every
    /// `offsetCommitIntervalMs` (a synchronous round trip) unless forced. Advisory: the
    /// ledger holds the offsets, so a failure is only logged.
    private func commitOffsets(force: Bool) throws {
        guard let consumer, !uncommittedOffsets.isEmpty else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard force || now - lastCommit >= UInt64(config.offsetCommitIntervalMs) * 1_000_000 else { return }
        lastCommit = now
        do {
            try consumer.commit(uncommittedOffsets)
        } catch {
            logger.debug("offset commit failed (advisory; the ledger holds the offsets): \(error)")
        }
        uncommittedOffsets.removeAll(keepingCapacity: true)
    }
}
