import Dispatch
import DrawdownCore
import DrawdownLedger
import DrawdownService
import Foundation

// The replay figures of docs/benchmarks.md ("Replay") in one plain run:
//
//   swift run -c release --scratch-path .build-bench Replay [--messages N] [--batch N] [--snapshot-every N] [--dir DIR]
//
// Writes a data directory the way the committer does (a generated workload over 8
// partitions, batches of --batch records (5,000), a snapshot every --snapshot-every batches (20)), then measures in the
// same run: the raw drain rate (read, check and decode every batch of the ledger, no engine),
// a re-rating replay of the whole ledger with another price book (events/s, and its ratio to
// the drain), and the time to restore the state before a batch from a snapshot plus N batches.

var arguments = CommandLine.arguments.dropFirst()
var messages = 500_000
var batchRecords = 5_000
var directory = NSTemporaryDirectory() + "drawdown-replay-bench-\(getpid())"
var snapshotEvery: UInt64 = 20
while let argument = arguments.popFirst() {
    switch argument {
    case "--messages": messages = arguments.popFirst().flatMap { Int($0) } ?? messages
    case "--batch": batchRecords = arguments.popFirst().flatMap { Int($0) } ?? batchRecords
    case "--dir": directory = arguments.popFirst() ?? directory
    case "--snapshot-every": snapshotEvery = arguments.popFirst().flatMap { UInt64($0) }.map { max(2, $0) } ?? snapshotEvery
    default:
        print("usage: Replay [--messages N] [--batch N] [--snapshot-every N] [--dir DIR]")
        exit(2)
    }
}

func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

/// CPU seconds of this process (all its threads: the replay's recomputed side runs on a
/// second one): on a shared machine, what the work cost whatever the waiting.
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

let partitions: Int32 = 8
let oldPrices = Array(Workload.priceBookJSON.utf8)
let newPrices = Array(
    Workload.priceBookJSON.replacingOccurrences(of: #""unit_price": "0.0025""#, with: #""unit_price": "0.004""#)
        .replacingOccurrences(of: #""small": "0.0000005""#, with: #""small": "0.0000011""#).utf8)

// 1. The data directory.
try? FileManager.default.removeItem(atPath: directory)
let settings = try EngineSettings(priceBookJSON: oldPrices)
let replaySettings = try EngineSettings(config: settings.config, priceBookJSON: newPrices)
let ledger = try LedgerStore.open(dataDirectory: directory)
let snapshots = try SnapshotStore(dataDirectory: directory, limits: LedgerLimits(snapshotsRetainedMax: 1_000))
let writeStart = DispatchTime.now().uptimeNanoseconds
do {
    var engines = (0..<partitions).map { PartitionEngine(partition: $0, config: settings.config) }
    var decoder = MessageDecoder(priceBook: settings.priceBook)
    var next = [Int64](repeating: 0, count: Int(partitions))
    let records = Workload.records(WorkloadSpec.benchmark(messages: messages, customers: max(100, messages / 10)))
    var start = 0
    while start < records.count {
        let chunk = records[start..<min(start + batchRecords, records.count)]
        start += chunk.count
        var sections = (0..<partitions).map { PartitionSection(partition: $0) }
        for (bytes, record) in chunk {
            let customer = record.message?.customer
            var h: UInt32 = 2_166_136_261
            for b in (customer ?? "").utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            let p = Int(h % UInt32(partitions))
            let key = customer.map { Array($0.utf8) }
            sections[p].inputs.append(InputRecord(topic: "usage", offset: next[p], key: key, value: bytes))
            next[p] += 1
            let decoded = bytes.withUnsafeBufferPointer { value in
                key.map { k in k.withUnsafeBufferPointer { decoder.decode(value, key: $0) } } ?? decoder.decode(value)
            }
            switch decoded {
            case .failure: engines[p].countRejected()
            case .success(let message): _ = engines[p].apply(message)
            }
            sections[p].entries += engines[p].takeOutput().entries
        }
        let used = sections.filter { !$0.inputs.isEmpty }
        let batch = LedgerBatch.entries(number: ledger.lastBatchNumber + 1, previousHash: ledger.lastHash, sections: used)
        let hash = try ledger.append(batch)
        if batch.number % snapshotEvery == 0 {
            _ = try snapshots.write(EngineSnapshots.encode(engines), coversThroughBatch: batch.number, chainHash: hash)
        }
    }
}
let last = ledger.lastBatchNumber
print("ledger: \(messages) messages in \(last) batches of \(batchRecords) over \(partitions) partitions, written in \(String(format: "%.1f", seconds(since: writeStart))) s")

// 2. Raw drain: read, check and decode every batch; no engine.
var drained = 0
let drainCPU = cpuSeconds()
let drainStart = DispatchTime.now().uptimeNanoseconds
let reader = ledger.batches(from: 1)
while let batch = try reader.next() {
    for section in try BatchPayload.decode(batch.payload).sections { drained += section.inputs.count }
}
let drainSeconds = seconds(since: drainStart)
let drainCPUSeconds = cpuSeconds() - drainCPU

// 3. Re-rating replay of the whole ledger (no snapshot needed: it starts at batch 1).
let replayCPU = cpuSeconds()
let result = try Replay.run(
    ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: replaySettings, fromBatch: 1, throughBatch: .max)
let replayCPUSeconds = cpuSeconds() - replayCPU
let drainRate = Double(drained) / drainSeconds
let replayRate = Double(result.recordsReplayed) / result.replaySeconds
print(String(format: "raw drain:  %d records in %.2f s = %.0f records/s", drained, drainSeconds, drainRate))
print(String(format: "replay:     %d records in %.2f s = %.0f events/s (%.3f of the drain rate); %d event charges changed, %d adjustments",
             result.recordsReplayed, result.replaySeconds, replayRate, replayRate / drainRate, result.eventsChanged, result.adjustments.count))
print(String(format: "CPU time:   drain %.0f records per CPU-second, replay %.0f events per CPU-second (%.3f of the drain); the replay's CPU is both threads' and includes its end-state comparison",
             Double(drained) / drainCPUSeconds, Double(result.recordsReplayed) / replayCPUSeconds,
             (Double(result.recordsReplayed) / replayCPUSeconds) / (Double(drained) / drainCPUSeconds)))

// 4. Restoring the state before batch S + N + 1: the snapshot through S plus N batches.
let base = (last / 2 / snapshotEvery) * snapshotEvery
for n: UInt64 in [0, 1, snapshotEvery / 2, snapshotEvery - 1] where base >= snapshotEvery && base + n < last {
    let restore = try Replay.run(
        ledger: ledger, snapshots: snapshots, settings: settings, replaySettings: settings, fromBatch: base + n + 1,
        throughBatch: base + n)
    print(String(format: "restore:    snapshot through batch %llu + %llu batch(es) (%d records) in %.3f s",
                 restore.snapshotBatch ?? 0, n, Int(n) * batchRecords, restore.restoreSeconds))
}
let scratchStart = DispatchTime.now().uptimeNanoseconds
let scratchCPU = cpuSeconds()
_ = try LedgerReplay.rebuild(ledger: ledger, snapshots: nil, settings: settings)
let rebuildCPUSeconds = cpuSeconds() - scratchCPU
print(String(format: "rebuild:    all %llu batches from nothing in %.2f s (%.0f records per CPU-second; the replay runs at %.2f of it)",
             last, seconds(since: scratchStart), Double(drained) / rebuildCPUSeconds,
             (Double(result.recordsReplayed) / replayCPUSeconds) / (Double(drained) / rebuildCPUSeconds)))
try? FileManager.default.removeItem(atPath: directory)
