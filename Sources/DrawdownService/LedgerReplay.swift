import DrawdownCore
import DrawdownLedger

/// Why a data directory could not be replayed.
public enum ReplayError: Error, CustomStringConvertible, Sendable {
    /// A batch's payload does not decode (the ledger's checksums passed, so this is a bug or
    /// a ledger written by something else).
    case damagedPayload(batch: UInt64, detail: String)
    /// Re-applying a batch's inputs gave other entries than the ledger holds.
    case mismatch(batch: UInt64, partition: Int32, detail: String)
    /// A small file beside the ledger (`published`, `engine-settings`, `corrections/…`) is unreadable.
    case damagedFile(path: String, detail: String)
    /// What `drawdown replay` was asked cannot be done (a position outside the ledger, an
    /// `--apply` that is not to the end of the ledger, a correction the engine refuses).
    case refused(String)

    public var description: String {
        switch self {
        case .damagedPayload(let batch, let detail):
            "ledger batch \(batch): payload does not decode: \(detail)"
        case .mismatch(let batch, let partition, let detail):
            "ledger batch \(batch), partition \(partition): re-applying its inputs gives other entries than the ledger "
                + "holds (\(detail)); was the price book, --dedupe-window or --expiry-grace changed? "
                + "Refusing to start: the ledger is the truth"
        case .damagedFile(let path, let detail):
            "\(path): \(detail)"
        case .refused(let reason):
            reason
        }
    }
}

/// Rebuilds engine state from a data directory: the ledger's batches re-applied in order
/// (from the newest snapshot when there is one), each batch's entries checked against what
/// the engine produces again. `drawdown run` recovers through this; `drawdown state` and
/// `drawdown ledger` read data directories with it; `drawdown replay` starts from it.
///
/// Correction batches (written by `drawdown replay --apply`) are re-applied too, entry by
/// entry through `PartitionEngine.adjust`. Each batch is checked with the price book it was
/// written with: the one recorded as "before" by the next correction, or after the last
/// correction the given settings' (docs/replay.md).
public enum LedgerReplay {
    public struct Rebuilt: Sendable {
        /// One engine per partition number that appears in the ledger, by partition.
        public var engines: [PartitionEngine]
        /// The last batch applied (0 for an empty ledger).
        public var lastBatch: UInt64
        /// The batch the starting snapshot covered, if one was used.
        public var snapshotBatch: UInt64?
        /// Newer snapshots that were not usable (damaged, or not matching the ledger).
        public var skippedSnapshots: [LedgerProblem]
        public var batchesReplayed: Int
        public var recordsReplayed: Int
        /// The outputs of the batches after `outputsAfterBatch`, regenerated in order.
        public var outputs: [OutputRecord]
    }

    /// Restores the newest usable snapshot of `snapshots` (when given), replays every later
    /// batch of `ledger` up to `throughBatch`, and returns the state after the last one.
    /// `outputsAfterBatch`: regenerate the balance changes, alerts and dead letters
    /// of the batches after this one (`.max`: none). Throws `ReplayError` when a batch's
    /// entries differ from what the engine produces (other settings than the ledger's), and
    /// `LedgerError` when the ledger cannot be read.
    public static func rebuild(
        ledger: LedgerStore, snapshots: SnapshotStore? = nil, settings: EngineSettings, outputsAfterBatch: UInt64 = .max,
        throughBatch: UInt64 = .max
    ) throws -> Rebuilt {
        var replayer = try BatchReplayer.restore(
            ledger: ledger, snapshots: snapshots, settings: settings, outputsAfterBatch: outputsAfterBatch, throughBatch: throughBatch)
        try replayer.replay(through: throughBatch, outputsAfterBatch: outputsAfterBatch)
        return replayer.rebuilt
    }

    /// Opens the ledger under `dataDirectory` (taking its lock: not while `drawdown run`
    /// has it open), reads the settings saved there, and rebuilds the engines from the newest
    /// usable snapshot plus the batches after it.
    public static func rebuild(dataDirectory: String) throws -> Rebuilt {
        let ledger = try LedgerStore.open(dataDirectory: dataDirectory)
        let settings = try EngineSettings.load(dataDirectory: dataDirectory) ?? EngineSettings(config: EngineConfig(), priceBook: nil)
        return try rebuild(ledger: ledger, snapshots: try SnapshotStore(dataDirectory: dataDirectory), settings: settings)
    }

    /// Calls `body` with every ledger entry from batch `fromBatch` on, in ledger order
    /// (batch, then partition, then sequence), with the batch number and partition; the
    /// `adjust` entries of correction batches included.
    public static func forEachEntry(
        in ledger: LedgerStore, fromBatch: UInt64 = 1,
        _ body: (_ batch: UInt64, _ partition: Int32, _ entry: LedgerEntry) throws -> Void
    ) throws {
        let reader = ledger.batches(from: max(1, fromBatch))
        while let batch = try reader.next() {
            guard batch.kind != .marker else { continue }
            for section in try decodePayload(batch).sections {
                for entry in section.entries { try body(batch.number, section.partition, entry) }
            }
        }
    }

    static func decodePayload(_ batch: LedgerBatch) throws -> BatchPayload {
        do {
            return try BatchPayload.decode(batch.payload)
        } catch {
            throw ReplayError.damagedPayload(batch: batch.number, detail: error.description)
        }
    }

    static func difference(_ produced: [LedgerEntry], _ recorded: [LedgerEntry]) -> String {
        for (i, (a, b)) in zip(produced, recorded).enumerated() where a != b {
            var x: [UInt8] = [], y: [UInt8] = []
            a.appendJSON(to: &x)
            b.appendJSON(to: &y)
            return "entry \(i): produced \(String(decoding: x, as: UTF8.self)), recorded \(String(decoding: y, as: UTF8.self))"
        }
        return "produced \(produced.count) entries, recorded \(recorded.count)"
    }
}

/// The engines of a data directory being rolled forward one ledger batch at a time: what
/// `LedgerReplay.rebuild` and `drawdown replay` share. Entries batches re-apply their recorded
/// inputs and must give back the recorded entries; correction batches re-apply their `adjust`
/// entries and switch to the price book the batches after them were written with.
struct BatchReplayer {
    let ledger: LedgerStore
    let settings: EngineSettings
    var config: EngineConfig { settings.config }
    var engines: [Int32: PartitionEngine] = [:]
    var applier: RecordApplier
    var rebuilt = LedgerReplay.Rebuilt(
        engines: [], lastBatch: 0, snapshotBatch: nil, skippedSnapshots: [], batchesReplayed: 0, recordsReplayed: 0, outputs: [])
    private var produced: [LedgerEntry] = []

    private init(ledger: LedgerStore, settings: EngineSettings, priceBook: PriceBook?) {
        self.ledger = ledger
        self.settings = settings
        self.applier = RecordApplier(priceBook: priceBook)
    }

    var lastBatch: UInt64 { rebuilt.lastBatch }

    /// The engines as they are after the last applied batch, by partition.
    var sortedEngines: [PartitionEngine] { engines.keys.sorted().map { engines[$0]! } }

    /// Engines restored from the newest usable snapshot at or before `throughBatch` (and not
    /// past `outputsAfterBatch`, whose outputs it could not give back), with the price book in
    /// force for the batch after it.
    static func restore(
        ledger: LedgerStore, snapshots: SnapshotStore?, settings: EngineSettings, outputsAfterBatch: UInt64, throughBatch: UInt64
    ) throws -> BatchReplayer {
        var engines: [Int32: PartitionEngine] = [:]
        var skipped: [LedgerProblem] = []
        var snapshotBatch: UInt64?
        if let snapshots {
            let last = ledger.lastBatchNumber
            let load = try snapshots.newestValid(matching: ledger, notAfter: min(throughBatch, last))
            // Snapshots newer than a replay's end are not problems.
            skipped = load.skipped.filter { ($0.batchNumber ?? 0) <= min(throughBatch, last) }
            // A snapshot past the last published batch cannot give that batch's outputs back:
            // replay from the start instead (the published marker is written before snapshots,
            // so this only happens when the marker was lost).
            if let snapshot = load.snapshot, snapshot.coversThroughBatch <= outputsAfterBatch {
                let restored: [PartitionEngine]
                do {
                    restored = try EngineSnapshots.decode(snapshot.state, config: settings.config)
                } catch {
                    throw ReplayError.damagedFile(path: snapshot.file, detail: "engine state does not decode: \(error.description)")
                }
                for engine in restored { engines[engine.partition] = engine }
                snapshotBatch = snapshot.coversThroughBatch
            }
        }
        let start = snapshotBatch ?? 0
        let book = try CorrectionFiles.priceBook(forBatchAfter: start, ledger: ledger, settings: settings)
        var replayer = BatchReplayer(ledger: ledger, settings: settings, priceBook: book)
        replayer.engines = engines
        replayer.rebuilt.skippedSnapshots = skipped
        replayer.rebuilt.snapshotBatch = snapshotBatch
        replayer.rebuilt.lastBatch = start
        return replayer
    }

    /// Applies every batch after the last applied one, up to `through` (or the ledger's end).
    mutating func replay(through: UInt64, outputsAfterBatch: UInt64) throws {
        guard lastBatch < through else {
            rebuilt.engines = sortedEngines
            return
        }
        let reader = ledger.batches(from: lastBatch + 1)
        while let batch = try reader.next() {
            try apply(batch, wantOutputs: batch.number > outputsAfterBatch)
            if batch.number >= through { break }
        }
        rebuilt.engines = sortedEngines
    }

    /// Applies one batch (the next one). `observe` sees every input of an entries batch with
    /// the entries it wrote, as it is applied.
    mutating func apply(
        _ batch: LedgerBatch, payload decoded: BatchPayload? = nil, wantOutputs: Bool,
        observe: ((_ partition: Int32, _ input: InputRecord, _ entries: ArraySlice<LedgerEntry>) -> Void)? = nil
    ) throws {
        precondition(batch.number == lastBatch + 1, "batches are applied in order")
        switch batch.kind {
        case .marker:
            break
        case .entries:
            let payload = try decoded ?? LedgerReplay.decodePayload(batch)
            for section in payload.sections {
                // Taken out of the table while it changes, so the change does not copy its storage.
                var engine = engines.removeValue(forKey: section.partition) ?? PartitionEngine(partition: section.partition, config: config)
                produced.removeAll(keepingCapacity: true)
                let inputs = section.inputs
                applier.apply(
                    run: inputs.count, input: { .record(inputs[$0]) }, engine: &engine, entries: &produced,
                    outputs: &rebuilt.outputs, wantOutputs: wantOutputs
                ) { index, _, written in
                    observe?(section.partition, inputs[index], written)
                }
                if produced != section.entries {
                    throw ReplayError.mismatch(
                        batch: batch.number, partition: section.partition,
                        detail: LedgerReplay.difference(produced, section.entries))
                }
                rebuilt.recordsReplayed += section.inputs.count
                engines[section.partition] = engine
            }
            rebuilt.batchesReplayed += 1
        case .correction:
            let record = try CorrectionFiles.read(batch: batch.number, dataDirectory: ledger.dataDirectory)
            let payload = try LedgerReplay.decodePayload(batch)
            for section in payload.sections {
                guard var engine = engines.removeValue(forKey: section.partition) else {
                    throw ReplayError.mismatch(
                        batch: batch.number, partition: section.partition, detail: "a correction for a partition with no state")
                }
                try Self.adjust(&engine, with: section.entries, batch: batch.number)
                if wantOutputs {
                    applier.appendAdjustmentOutputs(section.entries, engine: engine, correctionID: record.id, to: &rebuilt.outputs)
                }
                engines[section.partition] = engine
            }
            // The batches after it were written with the book saved before the next correction
            // (or the current one): usually this correction's new book.
            applier = RecordApplier(
                priceBook: try CorrectionFiles.priceBook(forBatchAfter: batch.number, ledger: ledger, settings: settings))
            rebuilt.batchesReplayed += 1
        }
        rebuilt.lastBatch = batch.number
    }

    /// Re-applies recorded `adjust` entries to `engine`; each must come out exactly as recorded.
    static func adjust(_ engine: inout PartitionEngine, with entries: [LedgerEntry], batch: UInt64) throws {
        for entry in entries {
            guard entry.type == .adjust else {
                throw ReplayError.mismatch(batch: batch, partition: engine.partition, detail: "a \(entry.type) entry in a correction batch")
            }
            let result = engine.adjust(
                customer: entry.customer, currency: entry.currency, grant: entry.grant, amount: entry.amount, source: entry.source,
                timestamp: entry.timestamp)
            if case .failure(let error) = result {
                throw ReplayError.mismatch(batch: batch, partition: engine.partition, detail: "adjust refused: \(error)")
            }
            if engine.entries.last != entry {
                throw ReplayError.mismatch(
                    batch: batch, partition: engine.partition,
                    detail: LedgerReplay.difference(Array(engine.entries.suffix(1)), [entry]))
            }
        }
        engine.discardOutput()
    }
}
