import DrawdownCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The stages the engine benchmarks time, shared by the `Engine` benchmark and the
/// `EngineFigures` tool: a loop that only splits the file into lines (the baseline),
/// parse-only, apply-only (pre-decoded messages) and parse+apply, each over the same
/// generated workload (`WorkloadSpec.benchmark()`: 1,000,000 messages, 100,000 customers).
public enum EngineStages {
    /// Entries are dropped every this many messages, as a batch boundary would.
    public static let batchMessages = 1_024

    /// The benchmark workload as JSON lines; `DRAWDOWN_BENCH_MESSAGES` scales it down for a quick run.
    public static func workload() -> [UInt8] {
        Workload.jsonLines(spec())
    }

    /// Messages warmed and applied at a time: `PartitionEngine.warmGroup`, or
    /// `DRAWDOWN_WARM_GROUP` (1 applies one message at a time, still without copying it).
    public static let warmGroup: Int = {
        guard let text = getenv("DRAWDOWN_WARM_GROUP"), let group = Int(String(cString: text)), group > 0 else {
            return PartitionEngine.warmGroup
        }
        return group
    }()

    public static func spec() -> WorkloadSpec {
        guard let text = getenv("DRAWDOWN_BENCH_MESSAGES"), let messages = Int(String(cString: text)), messages > 0 else {
            return WorkloadSpec.benchmark()
        }
        return WorkloadSpec.benchmark(messages: messages, customers: max(1, messages / 10))
    }

    /// The baseline: finds every line and touches its first byte. Returns a checksum.
    public static func splitLines(_ input: UnsafeBufferPointer<UInt8>) -> Int {
        var checksum = 0
        JSONLines.forEachLine(in: input) { line in
            checksum &+= line.count &+ Int(line.first ?? 0)
        }
        return checksum
    }

    /// The newline bytes of `input` (a workload file's line count). Here, outside any actor:
    /// the same closure in the tool's top-level code is main-actor isolated, and Swift 6
    /// checked that isolation on each of the file's 157M calls (a quarter of a `perf` profile
    /// of the tool, before the clock started).
    public static func newlineCount(_ input: UnsafeBufferPointer<UInt8>) -> Int {
        var count = 0
        for byte in input where byte == 0x0A { count += 1 }
        return count
    }

    /// Decodes every line. Returns how many decoded.
    public static func parse(_ input: UnsafeBufferPointer<UInt8>, decoder: inout MessageDecoder) -> Int {
        var decoded = 0
        JSONLines.forEachLine(in: input) { line in
            if case .success = decoder.decode(line) { decoded += 1 }
        }
        return decoded
    }

    /// The decoded messages, for apply-only.
    public static func decodeAll(_ input: UnsafeBufferPointer<UInt8>) -> [Message] {
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var messages: [Message] = []
        messages.reserveCapacity(input.count / 150)
        JSONLines.forEachLine(in: input) { line in
            if case .success(let message) = decoder.decode(line) { messages.append(message) }
        }
        return messages
    }

    /// Pre-decoded messages cut into groups of `warmGroup`, for `applyOwned`: each run gets its
    /// own copy, made before the clock starts.
    public static func groups(_ messages: [Message]) -> [[Message]] {
        stride(from: 0, to: messages.count, by: warmGroup).map { Array(messages[$0..<min($0 + warmGroup, messages.count)]) }
    }

    /// Applies pre-decoded messages the way `drawdown process` and the pipeline do: each group
    /// warmed, then moved out and applied (`PartitionEngine.apply(draining:_:)`), so no message
    /// is copied. Leaves the groups empty. Returns how many were applied.
    public static func applyOwned(_ groups: inout [[Message]], engine: inout PartitionEngine) -> Int {
        var batch = Batch()
        for g in groups.indices {
            engine.apply(draining: &groups[g]) { _, engine in batch.count(&engine) }
        }
        engine.discardOutput()
        return Int(engine.applied)
    }

    /// Applies pre-decoded messages, warming each group of `warmGroup` first
    /// (`PartitionEngine.apply(_:group:_:)`); each message is copied for its call, as the
    /// caller keeps the array. Returns how many were applied.
    public static func apply(_ messages: [Message], engine: inout PartitionEngine) -> Int {
        var batch = Batch()
        engine.apply(messages, group: warmGroup) { _, _, engine in batch.count(&engine) }
        engine.discardOutput()
        return Int(engine.applied)
    }

    /// The same, one `apply(_:)` at a time without warming (the stage as it was before
    /// 2026-12-01). Each message is copied out of the array and destroyed after.
    public static func applyEach(_ messages: [Message], engine: inout PartitionEngine) -> Int {
        var batch = Batch()
        for message in messages {
            _ = engine.apply(message)
            batch.count(&engine)
        }
        engine.discardOutput()
        return Int(engine.applied)
    }

    /// Drops the engine's output at every batch boundary.
    struct Batch {
        var messages = 0

        mutating func count(_ engine: inout PartitionEngine) {
            messages += 1
            if messages == EngineStages.batchMessages {
                engine.discardOutput()
                messages = 0
            }
        }
    }

    /// Decodes and applies every line, in groups of `warmGroup` decoded
    /// messages (each group warmed, then applied in order). Returns how many were applied.
    public static func parseAndApply(
        _ input: UnsafeBufferPointer<UInt8>, decoder: inout MessageDecoder, engine: inout PartitionEngine
    ) -> Int {
        var batch = Batch()
        var group: [Message] = []
        group.reserveCapacity(warmGroup)
        func flush() {
            engine.apply(draining: &group) { _, engine in batch.count(&engine) }
        }
        JSONLines.forEachLine(in: input) { line in
            switch decoder.decode(line) {
            case .success(let message):
                group.append(message)
                if group.count == warmGroup { flush() }
            case .failure:
                flush()
                engine.countRejected()
                batch.count(&engine)
            }
        }
        flush()
        engine.discardOutput()
        return Int(engine.applied)
    }

    /// Remembers `keys` distinct idempotency keys (10,000 customers, timestamps inside the
    /// window) and reports the table's storage bytes, its count, and the process RSS growth.
    public static func dedupeMemory(keys: Int) -> (storageBytes: Int, count: Int, rssGrowthBytes: Int?) {
        let rssBefore = residentBytes()
        var table = DedupeTable()
        let t0: Int64 = WorkloadSpec.defaultStartNanos
        for n in 0..<keys {
            let customer = n % 10_000
            let key = KeyFingerprint(low: StableHash.mix(UInt64(n), 0x9E37_79B9_7F4A_7C15), high: UInt64(n))
            table.remember(key, customer: customer, timestamp: t0 + Int64(n), contentHash: UInt64(n)) { _, _ in false }
        }
        let rssAfter = residentBytes()
        let growth = rssBefore.flatMap { before in rssAfter.map { $0 - before } }
        return (table.storageBytes, table.count, growth)
    }

    /// The process's resident set size, from /proc/self/statm (Linux only).
    public static func residentBytes() -> Int? {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = String(decoding: buffer[..<count], as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
