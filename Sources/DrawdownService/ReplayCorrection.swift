import DrawdownCore
import DrawdownLedger
import Foundation

/// What `drawdown replay --apply` records beside a correction batch (docs/replay.md): the
/// correction's identity, the range it re-rated, and the price books before and after it, so
/// that a rebuild from before the correction checks the earlier batches with the book they
/// were written with and the later ones with the new book.
///
/// File: `<data-dir>/corrections/<20-digit batch>.correction`, written durably *before* the
/// batch is appended. A file whose batch is not a correction batch (a crash between the two)
/// is stale and ignored; it is replaced by the next apply.
public struct CorrectionRecord: Sendable, Equatable {
    /// `r<from>-<through>-<16 hex digits>`: the range and a digest of the price book replayed
    /// with. The `source` of every `adjust` entry it writes, and its balance changes' cause id.
    public var id: String
    /// The correction batch.
    public var batch: UInt64
    public var fromBatch: UInt64
    public var throughBatch: UInt64
    /// The price book bytes in force before the correction (nil: none recorded).
    public var pricesBefore: [UInt8]?
    /// The price book bytes the range was replayed with, in force after the correction.
    public var pricesAfter: [UInt8]?

    public init(id: String, batch: UInt64, fromBatch: UInt64, throughBatch: UInt64, pricesBefore: [UInt8]?, pricesAfter: [UInt8]?) {
        self.id = id
        self.batch = batch
        self.fromBatch = fromBatch
        self.throughBatch = throughBatch
        self.pricesBefore = pricesBefore
        self.pricesAfter = pricesAfter
    }

    /// The identity of a correction: the range and the replayed price book's digest.
    public static func identity(fromBatch: UInt64, throughBatch: UInt64, prices: [UInt8]?) -> String {
        let digest = (prices ?? []).withUnsafeBytes { LedgerHash.chaining(.zero, body: $0) }
        return "r\(fromBatch)-\(throughBatch)-" + String(digest.hex.prefix(16))
    }

    /// `drawdown-correction 1\nid …\nbatch N\nfrom N\nthrough N\nbefore_bytes N|none\nafter_bytes N|none\n<before><after>`.
    func encode() -> [UInt8] {
        var text = "drawdown-correction 1\n"
        text += "id \(id)\nbatch \(batch)\nfrom \(fromBatch)\nthrough \(throughBatch)\n"
        text += "before_bytes \(pricesBefore.map { String($0.count) } ?? "none")\n"
        text += "after_bytes \(pricesAfter.map { String($0.count) } ?? "none")\n"
        return Array(text.utf8) + (pricesBefore ?? []) + (pricesAfter ?? [])
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> CorrectionRecord {
        func damaged(_ detail: String) -> ReplayError { .damagedFile(path: path, detail: detail) }
        var fields: [String] = []
        var index = 0
        while fields.count < 7 {
            guard let nl = bytes[index...].firstIndex(of: 0x0A) else { throw damaged("short header") }
            fields.append(String(decoding: bytes[index..<nl], as: UTF8.self))
            index = nl + 1
        }
        guard fields[0] == "drawdown-correction 1" else { throw damaged("unknown format: \(fields[0])") }
        func value(_ n: Int, _ name: String) throws -> String {
            let parts = fields[n].split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0] == name else { throw damaged("expected \(name): \(fields[n])") }
            return String(parts[1])
        }
        guard let batch = UInt64(try value(2, "batch")), let from = UInt64(try value(3, "from")),
            let through = UInt64(try value(4, "through"))
        else { throw damaged("bad batch numbers") }
        func length(_ n: Int, _ name: String) throws -> Int? {
            let text = try value(n, name)
            if text == "none" { return nil }
            guard let count = Int(text), count >= 0 else { throw damaged("bad \(name)") }
            return count
        }
        let before = try length(5, "before_bytes"), after = try length(6, "after_bytes")
        guard (before ?? 0) + (after ?? 0) == bytes.count - index else { throw damaged("price book lengths") }
        let beforeBytes = before.map { count in Array(bytes[index..<index + count]) }
        let afterBytes = after.map { _ in Array(bytes[(index + (before ?? 0))...]) }
        return CorrectionRecord(
            id: try value(1, "id"), batch: batch, fromBatch: from, throughBatch: through, pricesBefore: beforeBytes,
            pricesAfter: afterBytes)
    }
}

/// The `corrections/` directory of a data directory.
enum CorrectionFiles {
    static let directoryName = "corrections"
    static let suffix = ".correction"

    static func path(batch: UInt64, dataDirectory: String) -> String {
        dataDirectory + "/" + directoryName + "/" + NumberedFileName.make(batch, suffix: suffix)
    }

    static func write(_ record: CorrectionRecord, dataDirectory: String, io: any StorageIO) throws {
        let directory = dataDirectory + "/" + directoryName
        try io.makeDirectory(directory)
        try io.syncDirectory(dataDirectory)
        try DataDirectoryFiles.writeDurably(
            record.encode(), directory: directory, name: NumberedFileName.make(record.batch, suffix: suffix), io: io)
    }

    /// The record of correction batch `batch`; a missing or unreadable one is an error (the
    /// batch cannot be re-applied without its price books).
    static func read(batch: UInt64, dataDirectory: String) throws -> CorrectionRecord {
        let path = path(batch: batch, dataDirectory: dataDirectory)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReplayError.damagedFile(path: path, detail: "missing: ledger batch \(batch) is a correction and needs it")
        }
        let record = try CorrectionRecord.decode([UInt8](data), path: path)
        guard record.batch == batch else {
            throw ReplayError.damagedFile(path: path, detail: "records batch \(record.batch), not \(batch)")
        }
        return record
    }

    /// Batch numbers of the correction files present, ascending.
    static func batches(dataDirectory: String) -> [UInt64] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory + "/" + directoryName)) ?? []
        return names.compactMap { NumberedFileName.parse($0, suffix: suffix) }.sorted()
    }

    /// The price book in force for batch `after + 1`: the book recorded as "before" by the first
    /// correction batch after `after`, or the settings' book when there is none.
    static func priceBook(forBatchAfter after: UInt64, ledger: LedgerStore, settings: EngineSettings) throws -> PriceBook? {
        for n in batches(dataDirectory: ledger.dataDirectory) where n > after && n <= ledger.lastBatchNumber {
            guard let batch = try ledger.batches(from: n).next(), batch.kind == .correction else { continue }  // stale
            guard let before = try read(batch: n, dataDirectory: ledger.dataDirectory).pricesBefore else { break }
            return try EngineSettings(config: settings.config, priceBookJSON: before).priceBook
        }
        return settings.priceBook
    }
}

extension RecordApplier {
    /// The balance changes of a correction's `adjust` entries on one partition (SPEC §6 shape):
    /// one per (customer, currency), in the order they first appear, with the entries of that
    /// pair, the balances after the last of them, and cause `{"type":"adjust","id":<correction id>}`.
    /// `engine` is the partition's engine after the entries were applied.
    mutating func appendAdjustmentOutputs(
        _ entries: [LedgerEntry], engine: PartitionEngine, correctionID: String, to outputs: inout [OutputRecord]
    ) {
        var groups: [(customer: String, currency: String)] = []
        for entry in entries where !groups.contains(where: { $0.customer == entry.customer && $0.currency == entry.currency }) {
            groups.append((entry.customer, entry.currency))
        }
        for group in groups {
            let own = entries.filter { $0.customer == group.customer && $0.currency == group.currency }
            let overage = engine.balances(customer: group.customer).first { $0.currency == group.currency }?.overage ?? .zero
            appendBalanceChange(
                customer: group.customer, currency: group.currency, available: own[own.count - 1].balance, overage: overage,
                causeType: "adjust", causeID: correctionID, entries: own[...], partition: engine.partition,
                timestamp: own[own.count - 1].timestamp, to: &outputs)
        }
    }
}
