import DrawdownTestSupport
import Foundation
import Glibc
import Testing
@testable import DrawdownLedger

/// A fresh directory under the system temp folder, removed by `remove()`.
struct TempDirectory {
    let path: String

    init(_ label: String = #function) {
        let sanitized = label.filter { $0.isLetter || $0.isNumber }
        var template = Array("\(NSTemporaryDirectory())/ledger-\(sanitized.prefix(40))-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    var ledger: String { path + "/ledger" }

    func segmentFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: ledger)) ?? []).filter { $0.hasSuffix(".seg") }.sorted()
    }

    func read(_ file: String) -> [UInt8] { Array(FileManager.default.contents(atPath: file) ?? Data()) }

    func write(_ file: String, _ bytes: [UInt8]) {
        precondition(FileManager.default.createFile(atPath: file, contents: Data(bytes)))
    }
}


/// The seed for randomized tests: `LEDGER_TEST_SEED` when set (to replay a failure), else fixed.
func testSeed(_ fallback: UInt64) -> UInt64 {
    if let s = ProcessInfo.processInfo.environment["LEDGER_TEST_SEED"], let v = UInt64(s) { return v }
    return fallback
}

/// Makes valid successive batches: contiguous numbers and sequences, offsets that only move
/// forward, random payloads (some compressible, some not).
struct BatchGenerator {
    var rng: SeededGenerator
    var number: UInt64 = 0
    var previousHash = LedgerHash.zero
    var seq: [Int32: UInt64] = [:]
    var offsets: [InputPartition: Int64] = [:]
    var clock: Int64 = 1_795_000_000_000_000_000
    var payloadBytesMax = 2_000

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    /// The next batch, following `previousHash` (call `accept` with the hash the store returns).
    mutating func next() -> LedgerBatch {
        number += 1
        var positions: [InputPosition] = []
        for topic in ["usage", "commands"] where Bool.random(using: &rng) {
            for partition in Int32(0)..<8 where Int.random(in: 0..<3, using: &rng) == 0 {
                let key = InputPartition(topic: topic, partition: partition)
                let next = (offsets[key] ?? 0) + Int64.random(in: 0...500, using: &rng)
                offsets[key] = next
                positions.append(InputPosition(topic: topic, partition: partition, nextOffset: next))
            }
        }
        var ranges: [SequenceRange] = []
        for partition in Int32(0)..<8 where Bool.random(using: &rng) {
            let first = (seq[partition] ?? 0) + 1
            let last = first + UInt64.random(in: 0...300, using: &rng)
            seq[partition] = last
            ranges.append(SequenceRange(partition: partition, firstSeq: first, lastSeq: last))
        }
        var eventTime: EventTimeRange?
        if Int.random(in: 0..<5, using: &rng) != 0 {
            let lo = clock + Int64.random(in: -1_000_000_000...1_000_000_000, using: &rng)
            clock += Int64.random(in: 0...5_000_000_000, using: &rng)
            eventTime = EventTimeRange(minNanos: lo, maxNanos: lo + Int64.random(in: 0...3_000_000_000, using: &rng))
        }
        let count = Int.random(in: 0...payloadBytesMax, using: &rng)
        let payload: [UInt8] = Bool.random(using: &rng)
            ? (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            : (0..<count).map { UInt8(truncatingIfNeeded: $0 % 17) }
        return LedgerBatch(
            number: number, previousHash: previousHash,
            kind: LedgerBatchKind.allCases.randomElement(using: &rng)!,
            positions: positions, sequenceRanges: ranges, eventTime: eventTime, payload: payload)
    }

    mutating func accept(_ hash: LedgerHash) { previousHash = hash }
}

/// Appends `count` generated batches; returns them and their hashes.
func appendBatches(_ store: LedgerStore, _ gen: inout BatchGenerator, count: Int) throws -> [(LedgerBatch, LedgerHash)] {
    var out: [(LedgerBatch, LedgerHash)] = []
    for _ in 0..<count {
        let batch = gen.next()
        let hash = try store.append(batch)
        gen.accept(hash)
        out.append((batch, hash))
    }
    return out
}

/// Every batch from `first` on, read back.
func readAll(_ store: LedgerStore, from first: UInt64 = 1) throws -> [LedgerBatch] {
    let reader = store.batches(from: first)
    var out: [LedgerBatch] = []
    while let b = try reader.next() { out.append(b) }
    return out
}

/// A small, fast configuration: tiny segments so tests roll them.
let smallLimits = LedgerLimits(segmentBytesMax: 4_096, sparseIndexStrideBatches: 4, snapshotsRetainedMax: 2)

/// Runs `body`, expecting `LedgerError.corrupt`; returns the problem it names.
func expectCorrupt(note: String = "", sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Any) -> LedgerProblem? {
    do {
        let value = try body()
        Issue.record("\(note): expected LedgerError.corrupt, got \(value)", sourceLocation: sourceLocation)
    } catch LedgerError.corrupt(let problem) {
        return problem
    } catch {
        Issue.record("\(note): expected LedgerError.corrupt, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
