import DrawdownCore
import DrawdownLedger
import DrawdownTestSupport
import Foundation

/// A data directory written in-process the way `drawdown run` writes one: a generated stream
/// split over partitions, applied by one engine per partition, committed in batches of a few
/// hundred records (inputs + entries per partition section, positions, sequence ranges).
struct LedgerFixture {
    static let topic = "usage"

    let directory: URL
    let partitions: Int32
    /// Every entry written, in ledger order, as `drawdown ledger` prints it.
    var expectedLines: [String] = []
    /// Per partition, the partition's records as JSON lines (what `drawdown process` reads).
    var partitionStreams: [Int32: [UInt8]] = [:]
    /// Where each batch's record lies: segment file, start and end byte.
    var records: [(batch: UInt64, file: String, start: Int64, end: Int64)] = []
    var batches: [LedgerBatch] = []
    /// The state document of the engines after the last batch.
    var state: [UInt8] = []

    /// The partition a customer's records go to (any stable function will do here).
    static func partition(of customer: String, partitions: Int32) -> Int32 {
        var h: UInt32 = 2_166_136_261
        for b in customer.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return Int32(h % UInt32(partitions))
    }

    /// Writes the ledger for `spec` under `directory/ledger`.
    init(directory: URL, spec: WorkloadSpec, partitions: Int32 = 4, recordsPerBatch: Int = 250,
         limits: LedgerLimits = LedgerLimits(segmentBytesMax: 64 << 10)) throws {
        self.directory = directory
        self.partitions = partitions
        let store = try LedgerStore.open(dataDirectory: directory.path, limits: limits)
        var engines: [PartitionEngine] = (0..<partitions).map { PartitionEngine(partition: $0) }
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var nextOffset = [Int64](repeating: 0, count: Int(partitions))
        let records = Workload.records(spec)
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(start + recordsPerBatch, records.count)]
            start += chunk.count
            var sections: [Int32: PartitionSection] = [:]
            for (bytes, record) in chunk {
                let customer = record.message?.customer
                let p = customer.map { Self.partition(of: $0, partitions: partitions) } ?? 0
                partitionStreams[p, default: []].append(contentsOf: bytes + [0x0A])
                var section = sections[p] ?? PartitionSection(partition: p)
                let key = customer.map { Array($0.utf8) }
                section.inputs.append(InputRecord(topic: Self.topic, offset: nextOffset[Int(p)], key: key, value: bytes))
                nextOffset[Int(p)] += 1
                let decoded = bytes.withUnsafeBufferPointer { value in
                    key.map { k in k.withUnsafeBufferPointer { decoder.decode(value, key: $0) } } ?? decoder.decode(value)
                }
                switch decoded {
                case .failure: engines[Int(p)].countRejected()
                case .success(let message): _ = engines[Int(p)].apply(message)
                }
                section.entries += engines[Int(p)].takeOutput().entries
                sections[p] = section
            }
            let ordered = sections.keys.sorted().map { sections[$0]! }
            let batch = LedgerBatch(
                number: store.lastBatchNumber + 1, previousHash: store.lastHash, kind: .entries,
                positions: ordered.map { InputPosition(topic: Self.topic, partition: $0.partition, nextOffset: nextOffset[Int($0.partition)]) },
                sequenceRanges: ordered.compactMap { s in
                    guard let first = s.entries.first, let last = s.entries.last else { return nil }
                    return SequenceRange(partition: s.partition, firstSeq: first.seq, lastSeq: last.seq)
                },
                eventTime: nil, payload: BatchPayload(sections: ordered).encode())
            try append(batch, to: store)
            for section in ordered {
                for entry in section.entries {
                    var line: [UInt8] = []
                    entry.appendJSON(to: &line, partition: section.partition)
                    expectedLines.append(String(decoding: line, as: UTF8.self))
                }
            }
        }
        state = StateDocument.render(engines)
    }

    /// Appends `batch` and notes where its record landed.
    mutating func append(_ batch: LedgerBatch, to store: LedgerStore) throws {
        let ledger = directory.appendingPathComponent("ledger")
        func sizes() throws -> [String: Int64] {
            var out: [String: Int64] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: ledger.path) where name.hasSuffix(".seg") {
                let attributes = try FileManager.default.attributesOfItem(atPath: ledger.appendingPathComponent(name).path)
                out[name] = (attributes[.size] as! NSNumber).int64Value
            }
            return out
        }
        let before = try sizes()
        try store.append(batch)
        let after = try sizes()
        let grown = after.first { before[$0.key] != $0.value }!
        records.append((batch.number, ledger.appendingPathComponent(grown.key).path, before[grown.key] ?? 0, grown.value))
        batches.append(batch)
    }

    /// Every partition's expected entries from `OfflineProcessor` (what `drawdown process` gives).
    func offlineEntries(partition: Int32) -> [String] {
        var processor = OfflineProcessor(priceBook: Workload.priceBook)
        var lines: [String] = []
        let stream = partitionStreams[partition] ?? []
        stream.withUnsafeBufferPointer { buffer in
            processor.run(buffer) { entries, _ in
                for entry in entries {
                    var line: [UInt8] = []
                    entry.appendJSON(to: &line, partition: partition)
                    lines.append(String(decoding: line, as: UTF8.self))
                }
            } rejected: { _ in }
        }
        return lines
    }
}

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let url: URL

    init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("drawdown-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Runs the built `drawdown` with `arguments`.
func drawdown(_ arguments: [String]) throws -> ProcessResult {
    try runProcess(drawdownBinaryURL(), arguments)
}

/// Lines of text, without a trailing empty one.
func lines(_ text: String) -> [String] {
    text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}
