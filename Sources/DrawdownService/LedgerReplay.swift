import DrawdownCore
import DrawdownLedger

/// Why a data directory could not be replayed.
public enum ReplayError: Error, CustomStringConvertible, Sendable {
    /// A batch's payload does not decode (the ledger's checksums passed, so this is a bug or
    /// a ledger written by something else).
    case damagedPayload(batch: UInt64, detail: String)
    /// Re-applying a batch's inputs gave other entries than the ledger holds.
    case mismatch(batch: UInt64, partition: Int32, detail: String)
    /// A small file beside the ledger (`published`, `engine-settings`) is unreadable.
    case damagedFile(path: String, detail: String)

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
        }
    }
}

/// Rebuilds engine state from a data directory: the ledger's batches re-applied in order
/// (from the newest snapshot when there is one), each batch's entries checked against what
/// the engine produces again. `drawdown run` recovers through this; `drawdown state` and
/// `drawdown ledger` read data directories with it.
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
    /// batch of `ledger`, and returns the state after the last one. `outputsAfterBatch`: regenerate the balance changes, alerts and dead letters
    /// of the batches after this one (`.max`: none). Throws `ReplayError` when a batch's
    /// entries differ from what the engine produces (other settings than the ledger's), and
    /// `LedgerError` when the ledger cannot be read.
    public static func rebuild(
        ledger: LedgerStore, snapshots: SnapshotStore? = nil, settings: EngineSettings, outputsAfterBatch: UInt64 = .max
    ) throws -> Rebuilt {
        var engines: [Int32: PartitionEngine] = [:]
        var applier = RecordApplier(priceBook: settings.priceBook)
        var result = Rebuilt(
            engines: [], lastBatch: 0, snapshotBatch: nil, skippedSnapshots: [], batchesReplayed: 0, recordsReplayed: 0,
            outputs: [])
        var produced: [LedgerEntry] = []
        var firstBatch: UInt64 = 1
        if let snapshots {
            let load = try snapshots.newestValid(matching: ledger)
            result.skippedSnapshots = load.skipped
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
                result.snapshotBatch = snapshot.coversThroughBatch
                result.lastBatch = snapshot.coversThroughBatch
                firstBatch = snapshot.coversThroughBatch + 1
            }
        }
        let reader = ledger.batches(from: firstBatch)
        while let batch = try reader.next() {
            guard batch.kind == .entries else {
                result.lastBatch = batch.number
                continue
            }
            let payload: BatchPayload
            do {
                payload = try BatchPayload.decode(batch.payload)
            } catch {
                throw ReplayError.damagedPayload(batch: batch.number, detail: error.description)
            }
            let wantOutputs = batch.number > outputsAfterBatch
            for section in payload.sections {
                var engine = engines[section.partition]
                    ?? PartitionEngine(partition: section.partition, config: settings.config)
                produced.removeAll(keepingCapacity: true)
                for input in section.inputs {
                    applier.apply(input, engine: &engine, entries: &produced, outputs: &result.outputs, wantOutputs: wantOutputs)
                }
                if produced != section.entries {
                    throw ReplayError.mismatch(
                        batch: batch.number, partition: section.partition, detail: difference(produced, section.entries))
                }
                result.recordsReplayed += section.inputs.count
                engines[section.partition] = engine
            }
            result.batchesReplayed += 1
            result.lastBatch = batch.number
        }
        result.engines = engines.keys.sorted().map { engines[$0]! }
        return result
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
    /// (batch, then partition, then sequence), with the batch number and partition.
    public static func forEachEntry(
        in ledger: LedgerStore, fromBatch: UInt64 = 1,
        _ body: (_ batch: UInt64, _ partition: Int32, _ entry: LedgerEntry) throws -> Void
    ) throws {
        let reader = ledger.batches(from: max(1, fromBatch))
        while let batch = try reader.next() {
            guard batch.kind == .entries else { continue }
            let payload: BatchPayload
            do {
                payload = try BatchPayload.decode(batch.payload)
            } catch {
                throw ReplayError.damagedPayload(batch: batch.number, detail: error.description)
            }
            for section in payload.sections {
                for entry in section.entries { try body(batch.number, section.partition, entry) }
            }
        }
    }

    private static func difference(_ produced: [LedgerEntry], _ recorded: [LedgerEntry]) -> String {
        for (i, (a, b)) in zip(produced, recorded).enumerated() where a != b {
            var x: [UInt8] = [], y: [UInt8] = []
            a.appendJSON(to: &x)
            b.appendJSON(to: &y)
            return "entry \(i): produced \(String(decoding: x, as: UTF8.self)), recorded \(String(decoding: y, as: UTF8.self))"
        }
        return "produced \(produced.count) entries, recorded \(recorded.count)"
    }
}
