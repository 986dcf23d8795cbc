import DrawdownCore
import DrawdownKafka
import DrawdownLedger
import Foundation

/// The correction batch `Replay.apply` wrote.
public struct ReplayApplied: Sendable, Equatable {
    public var batch: UInt64
    public var id: String
    public var entries: Int
    public var outputs: Int
}

/// Where `Replay.apply` is in its steps, for crash tests (`checkpoint`).
public enum ReplayApplyStep: String, Sendable {
    case recorded = "after-record"
    case appended = "after-append"
    case published = "after-publish"
}

extension Replay {
    /// Sends the outputs of durable batches after the `published` marker (a processor or an
    /// apply that stopped between making a batch durable and confirming its outputs), then
    /// moves the marker. Returns how many records were sent.
    public static func publishPending(
        ledger: LedgerStore, snapshots: SnapshotStore?, settings: EngineSettings, io: any StorageIO = POSIXStorageIO(),
        publish: ([OutputRecord]) throws -> Void
    ) throws -> Int {
        let published = try DataDirectoryFiles.readPublished(directory: ledger.dataDirectory)
        guard ledger.lastBatchNumber > published else { return 0 }
        let rebuilt = try LedgerReplay.rebuild(ledger: ledger, snapshots: snapshots, settings: settings, outputsAfterBatch: published)
        try publish(rebuilt.outputs)
        try DataDirectoryFiles.writePublished(rebuilt.lastBatch, directory: ledger.dataDirectory, io: io)
        return rebuilt.outputs.count
    }

    /// Writes `result`'s correction at the end of the ledger: the correction record
    /// (`corrections/`), then one correction batch of `adjust` entries (durable), then its balance
    /// changes through `publish`, the `published` marker, a snapshot through the batch, and the
    /// replayed price book as the data directory's engine settings. Returns nil, writing
    /// nothing, when there is nothing to correct. `ledger` must be open for writing (the
    /// processor stopped) and `result` computed on it to its end.
    ///
    /// A crash at any point leaves either no correction batch (a rerun computes the same
    /// correction again) or a durable one (a rerun finds no difference left and only finishes
    /// publishing): both end in the same state.
    public static func apply(
        _ result: ReplayResult, ledger: LedgerStore, snapshots: SnapshotStore?, settings: EngineSettings,
        replaySettings: EngineSettings, io: any StorageIO = POSIXStorageIO(), publish: ([OutputRecord]) throws -> Void,
        checkpoint: (ReplayApplyStep) -> Void = { _ in }
    ) throws -> ReplayApplied? {
        guard result.unappliable.isEmpty else {
            throw ReplayError.refused("the correction cannot be applied:\n  " + result.unappliable.joined(separator: "\n  "))
        }
        guard result.lastLedgerBatch == ledger.lastBatchNumber, result.throughBatch == ledger.lastBatchNumber else {
            throw ReplayError.refused(
                "the ledger moved on (batch \(ledger.lastBatchNumber), the replay ended at \(result.throughBatch)): replay again")
        }
        let published = try DataDirectoryFiles.readPublished(directory: ledger.dataDirectory)
        guard published >= ledger.lastBatchNumber else {
            throw ReplayError.refused("batches \(published + 1)…\(ledger.lastBatchNumber) are not published yet: publish them first")
        }
        guard !result.correctionSections.isEmpty else { return nil }
        let number = ledger.lastBatchNumber + 1
        let record = CorrectionRecord(
            id: result.correctionID, batch: number, fromBatch: result.fromBatch, throughBatch: result.throughBatch,
            pricesBefore: settings.priceBookJSON, pricesAfter: replaySettings.priceBookJSON)
        try CorrectionFiles.write(record, dataDirectory: ledger.dataDirectory, io: io)
        checkpoint(.recorded)

        var minTime = Int64.max, maxTime = Int64.min
        var outputs: [OutputRecord] = []
        var applier = RecordApplier(priceBook: replaySettings.priceBook)
        for section in result.correctionSections {
            for e in section.entries {
                minTime = min(minTime, e.timestamp.nanos)
                maxTime = max(maxTime, e.timestamp.nanos)
            }
            let engine = result.correctedEngines.first { $0.partition == section.partition }!
            applier.appendAdjustmentOutputs(section.entries, engine: engine, correctionID: record.id, to: &outputs)
        }
        let batch = LedgerBatch(
            number: number, previousHash: ledger.lastHash, kind: .correction, positions: [],
            sequenceRanges: result.correctionSections.map {
                SequenceRange(partition: $0.partition, firstSeq: $0.entries[0].seq, lastSeq: $0.entries[$0.entries.count - 1].seq)
            },
            eventTime: EventTimeRange(minNanos: minTime, maxNanos: maxTime),
            payload: BatchPayload(sections: result.correctionSections).encode())
        let hash = try ledger.append(batch)
        checkpoint(.appended)

        try publish(outputs)
        checkpoint(.published)
        try DataDirectoryFiles.writePublished(number, directory: ledger.dataDirectory, io: io)
        if let snapshots {
            _ = try snapshots.write(EngineSnapshots.encode(result.correctedEngines), coversThroughBatch: number, chainHash: hash)
        }
        try replaySettings.save(dataDirectory: ledger.dataDirectory, io: io)
        return ReplayApplied(
            batch: number, id: record.id, entries: result.correctionSections.reduce(0) { $0 + $1.entries.count }, outputs: outputs.count)
    }

    /// After a rerun found nothing left to correct: when the ledger ends with a correction
    /// computed with `replaySettings`' price book (an apply stopped after its batch became
    /// durable), saves that book as the data directory's engine settings, the apply's last step.
    /// Returns whether it did.
    @discardableResult
    public static func finishInterruptedApply(
        ledger: LedgerStore, replaySettings: EngineSettings, io: any StorageIO = POSIXStorageIO()
    ) throws -> Bool {
        let last = ledger.lastBatchNumber
        guard last > 0, let batch = try ledger.batches(from: last).next(), batch.kind == .correction else { return false }
        let record = try CorrectionFiles.read(batch: last, dataDirectory: ledger.dataDirectory)
        guard record.pricesAfter == replaySettings.priceBookJSON else { return false }
        try replaySettings.save(dataDirectory: ledger.dataDirectory, io: io)
        return true
    }
}

/// Sends output records with the idempotent producer and waits for every delivery; records
/// that failed are sent again (the same contract as the committer's publish).
public struct ReplayPublisher {
    let producer: KafkaProducer
    let balanceTopic: String
    let alertTopic: String
    let deadLetterTopic: String

    public init(producer: KafkaProducer, balanceTopic: String, alertTopic: String, deadLetterTopic: String) {
        self.producer = producer
        self.balanceTopic = balanceTopic
        self.alertTopic = alertTopic
        self.deadLetterTopic = deadLetterTopic
    }

    public func publish(_ outputs: [OutputRecord]) throws {
        var pending = Array(outputs.indices)
        while !pending.isEmpty {
            for i in pending {
                let topic: String =
                    switch outputs[i].kind {
                    case .balanceChange: balanceTopic
                    case .alert: alertTopic
                    case .deadLetter: deadLetterTopic
                    }
                let record = KafkaProducerRecord(topic: topic, key: outputs[i].key, value: outputs[i].value, headers: outputs[i].headers)
                while true {
                    do {
                        try producer.send(record, token: UInt64(i))
                        break
                    } catch where error.code == .queueFull || error.isRetriable {
                        _ = producer.poll(timeoutMs: 10)
                    } catch {
                        throw PipelineError("producing to \(topic): \(error)")
                    }
                }
            }
            while (try? producer.flush(timeoutMs: 10_000)) == nil {}
            pending = producer.takeReports().filter { !$0.succeeded }.map { Int($0.token) }.sorted()
            if !pending.isEmpty { usleep(100_000) }
        }
    }
}
