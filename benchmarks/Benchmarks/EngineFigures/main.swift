import DrawdownCore
import EngineStages

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Prints the engine figures of docs/benchmarks.md ("Engine") in one run, and writes the
// workload for timing `drawdown process` end to end:
//
//   swift run -c release --scratch-path ../.build-bench EngineFigures [--write DIR] [--repeats N] [--dedupe-keys N]
//
// --write DIR writes DIR/workload.jsonl and DIR/prices.json and exits.

var arguments = CommandLine.arguments.dropFirst()
var writeDirectory: String?
var repeats = 5
var dedupeKeys = 10_000_000
var inputPath: String?
var stages: Set<String> = ["split", "parse", "apply", "apply-copied", "apply-each", "both", "floor"]
while let argument = arguments.popFirst() {
    switch argument {
    case "--write": writeDirectory = arguments.popFirst()
    case "--repeats": repeats = arguments.popFirst().flatMap { Int($0) } ?? repeats
    case "--dedupe-keys": dedupeKeys = arguments.popFirst().flatMap { Int($0) } ?? dedupeKeys
    case "--input": inputPath = arguments.popFirst()
    case "--only": stages = Set((arguments.popFirst() ?? "").split(separator: ",").map(String.init))
    default:
        print("usage: EngineFigures [--write DIR] [--repeats N] [--dedupe-keys N] [--input FILE] [--only split,parse,apply,apply-copied,apply-each,both,floor]")
        exit(2)
    }
}

func write(_ bytes: [UInt8], to path: String) {
    guard let file = fopen(path, "wb") else {
        print("cannot write \(path)")
        exit(1)
    }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
    guard written == bytes.count else {
        print("short write to \(path)")
        exit(1)
    }
}

/// A workload file written by `--write` (no generation: what callgrind should see).
func read(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else {
        print("cannot read \(path)")
        exit(1)
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[..<count])
    }
    return bytes
}

let input = inputPath.map(read) ?? EngineStages.workload()
let spec = EngineStages.spec()
if let directory = writeDirectory {
    write(input, to: directory + "/workload.jsonl")
    write(Array(Workload.priceBookJSON.utf8), to: directory + "/prices.json")
    print("wrote \(directory)/workload.jsonl (\(spec.messages) messages, \(input.count) bytes) and \(directory)/prices.json")
    exit(0)
}

func nanoseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
}

/// CPU time of the calling thread: on a shared machine, what one core spent.
func threadCPUNanos() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) * 1e9 + Double(spec.tv_nsec)
}

struct Figure {
    var cpuNanos: Double
    var wallNanos: Double
    var result: Int
}

/// Median CPU and wall time of `repeats` runs of `body` (each gets fresh state from `prepare`).
func measure<State>(_ repeats: Int, _ prepare: () -> State, _ body: (inout State) -> Int) -> Figure {
    var cpu: [Double] = []
    var wall: [Double] = []
    var result = 0
    for _ in 0..<repeats {
        var state = prepare()
        let clock = ContinuousClock()
        let start = clock.now
        let cpuStart = threadCPUNanos()
        result = body(&state)
        cpu.append(threadCPUNanos() - cpuStart)
        wall.append(nanoseconds(clock.now - start))
        withExtendedLifetime(state) {}
    }
    cpu.sort()
    wall.sort()
    return Figure(cpuNanos: cpu[cpu.count / 2], wallNanos: wall[wall.count / 2], result: result)
}

let messages = !stages.isDisjoint(with: ["apply", "apply-copied", "apply-each", "floor"]) ? EngineStages.decodeAll(input.withUnsafeBufferPointer { $0 }) : []
let lines = inputPath == nil ? spec.messages : input.withUnsafeBufferPointer { EngineStages.newlineCount($0) }
print("workload: \(lines) messages, \(inputPath ?? "\(spec.customers) customers"), \(input.count) bytes (\(input.count / max(1, lines)) bytes a line), \(messages.count) decode; median of \(repeats) runs, thread CPU time")

let none = Figure(cpuNanos: 0, wallNanos: 0, result: 0)
let split = input.withUnsafeBufferPointer { buffer in measure(repeats, { () }) { _ in EngineStages.splitLines(buffer) } }
let parse = !stages.contains("parse") ? none : input.withUnsafeBufferPointer { buffer in
    measure(repeats, { MessageDecoder(priceBook: Workload.priceBook) }) { EngineStages.parse(buffer, decoder: &$0) }
}
let apply = !stages.contains("apply") ? none : measure(repeats, { (PartitionEngine(), EngineStages.groups(messages)) }) {
    EngineStages.applyOwned(&$0.1, engine: &$0.0)
}
let applyCopied = !stages.contains("apply-copied") ? none : measure(repeats, { PartitionEngine() }) { EngineStages.apply(messages, engine: &$0) }
let applyEach = !stages.contains("apply-each") ? none : measure(repeats, { PartitionEngine() }) { EngineStages.applyEach(messages, engine: &$0) }
let both = !stages.contains("both") ? none : input.withUnsafeBufferPointer { buffer in
    measure(repeats, { (MessageDecoder(priceBook: Workload.priceBook), PartitionEngine()) }) {
        EngineStages.parseAndApply(buffer, decoder: &$0.0, engine: &$0.1)
    }
}

let floorEvents = stages.contains("floor") ? ApplyFloor.events(messages) : []
let floor = !stages.contains("floor") ? none : measure(repeats, { ApplyFloor.State() }) {
    ApplyFloor.run(floorEvents, group: EngineStages.warmGroup, state: &$0)
}

func row(_ name: String, _ figure: Figure, lines: Int, baseline: Figure) {
    func fixed(_ value: Double, _ digits: Double = 10) -> String { "\((value * digits).rounded() / digits)" }
    let perEvent = figure.cpuNanos / Double(lines)
    let rate = Double(lines) / figure.cpuNanos * 1e9
    let pad = String(repeating: " ", count: max(1, 14 - name.count))
    print(
        name + pad + "\(fixed(perEvent)) ns/event  \(Int(rate.rounded())) events/s  ×\(fixed(figure.cpuNanos / baseline.cpuNanos)) split"
            + "  (wall \(fixed(figure.wallNanos / Double(lines))) ns/event; \(figure.result))")
}
row("split lines", split, lines: lines, baseline: split)
if stages.contains("parse") { row("parse", parse, lines: lines, baseline: split) }
if stages.contains("apply") { row("apply", apply, lines: lines, baseline: split) }
if stages.contains("apply-copied") { row("apply, copied", applyCopied, lines: lines, baseline: split) }
if stages.contains("apply-each") { row("apply, no warm", applyEach, lines: lines, baseline: split) }
if stages.contains("both") { row("parse+apply", both, lines: lines, baseline: split) }
if stages.contains("floor") { row("apply floor", floor, lines: lines, baseline: split) }

if dedupeKeys > 0 {
    let clock = ContinuousClock()
    let start = clock.now
    let memory = EngineStages.dedupeMemory(keys: dedupeKeys)
    let elapsed = nanoseconds(clock.now - start)
    let perKey = Double(memory.storageBytes) / Double(memory.count)
    let rss = memory.rssGrowthBytes.map { "\((Double($0) / Double(memory.count) * 10).rounded() / 10) bytes/key RSS growth" } ?? "RSS n/a"
    print("dedupe: \(memory.count) keys, \(memory.storageBytes) bytes storage = \((perKey * 10).rounded() / 10) bytes/key, \(rss), \(Int((elapsed / Double(memory.count)).rounded())) ns/insert")
}
