// The end-to-end pipeline figures (issue #4, "measure"): `drawdown run --stop-at-end` over
// 1,000,000 usage events preloaded on 64 partitions of a `drawdown dev-broker` process,
// against our consumer's raw drain of the same topic measured in the same run.
//
//   swift build -c release --product drawdown            # in the repository root
//   cd benchmarks && swift run -c release EndToEnd [--drawdown ../.build/release/drawdown]
//       [--messages 1000000] [--customers 100000] [--partitions 64] [--keep DIR]
//       [--run-arg ARG]... [--sweep "ARGS"]... [--no-recovery]
//
// `--run-arg` adds an argument to the measured run; each `--sweep "ARGS"` adds one more run
// over the same preloaded topic (fresh data directory) with those space-separated
// arguments, printed as one row each (how the defaults of --batch-max and --batch-interval
// were chosen); `--no-recovery` skips the kill -9 recovery runs.
//
// Prints one table (markdown) with the figures docs/benchmarks.md quotes.
import DrawdownCore
import DrawdownKafka
import Foundation

struct Options {
    var drawdown = "../.build/release/drawdown"
    var messages = 1_000_000
    var customers = 100_000
    var partitions: Int32 = 64
    var extraRecoveryMessages = 50_000
    var runArguments: [String] = []
    var sweeps: [[String]] = []
    var recovery = true
    /// Profile the measured run with `perf record` (flat, into the work directory).
    var perf = false
    var work: String?

    init(_ arguments: [String]) {
        var i = 1
        func value() -> String {
            i += 1
            guard i < arguments.count else { fatalError("missing value after \(arguments[i - 1])") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--drawdown": drawdown = value()
            case "--messages": messages = Int(value())!
            case "--customers": customers = Int(value())!
            case "--partitions": partitions = Int32(value())!
            case "--keep": work = value()
            case "--run-arg": runArguments.append(value())
            case "--sweep": sweeps.append(value().split(separator: " ").map(String.init))
            case "--no-recovery": recovery = false
            case "--perf": perf = true
            default: fatalError("unknown argument \(arguments[i])")
            }
            i += 1
        }
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}
nonisolated(unsafe) var standardError = StandardError()

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("EndToEnd: " + message + "\n").utf8))
    exit(1)
}

/// A child process (posix_spawn, so this process reaps it and gets its rusage) with its
/// stderr captured to a file.
///
/// `@unchecked Sendable`: used by the main thread only; the mutable fields are set by `run`
/// and `wait` there.
final class Child: @unchecked Sendable {
    let executable: String
    let arguments: [String]
    let stderrPath: String
    let keepsStdinOpen: Bool
    private(set) var pid: pid_t = 0
    private var stdinWriteEnd: Int32 = -1

    init(_ executable: String, _ arguments: [String], stderrPath: String, stdin: Bool = false) throws {
        self.executable = executable
        self.arguments = arguments
        self.stderrPath = stderrPath
        self.keepsStdinOpen = stdin
    }

    func run() throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeEnds: [Int32] = [-1, -1]
        if keepsStdinOpen {
            guard pipe(&pipeEnds) == 0 else { fail("pipe: \(errno)") }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[0], 0)
            posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
            stdinWriteEnd = pipeEnds[1]
            _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let status = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        if keepsStdinOpen { close(pipeEnds[0]) }
        guard status == 0 else { fail("posix_spawn \(executable): \(status)") }
    }

    var isRunning: Bool { kill(pid, 0) == 0 && !reaped }
    /// Running and not a zombie (`isRunning` holds until the exit status is reaped).
    var isAlive: Bool {
        guard let state = statFields?.first else { return false }
        return state != "Z"
    }
    private var reaped = false

    var stderr: String {
        String(decoding: FileManager.default.contents(atPath: stderrPath) ?? Data(), as: UTF8.self)
    }

    /// The fields of /proc/PID/stat after the command (nil once the process is reaped):
    /// state is field 3, utime 14 and stime 15, 1-based in proc(5).
    private var statFields: [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// CPU seconds (user + system) the process used so far, from /proc.
    var cpuSeconds: Double {
        guard let fields = statFields, fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12])
        else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Waits for exit; returns (exit status or 128 + signal, peak RSS in bytes, CPU seconds).
    func wait() -> (status: Int32, maxRSS: Int, cpuSeconds: Double) {
        if stdinWriteEnd >= 0 {
            close(stdinWriteEnd)
            stdinWriteEnd = -1
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        reaped = true
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        return (exitStatus, Int(usage.ru_maxrss) * 1024, cpu)
    }
}

/// Parses `key` followed by a number out of a log line.
func number(after key: String, in line: Substring) -> Double? {
    guard let r = line.range(of: key) else { return nil }
    let rest = line[r.upperBound...].drop { $0 == " " }
    let digits = rest.prefix { $0.isNumber || $0 == "." }
    return Double(digits)
}

struct RunFigures {
    var seconds = 0.0
    /// From the process start to the `assigned` log line (0: never seen): recovery, the
    /// group join and the first assignment. The dev broker holds a group's first join for
    /// 3 s (librdkafka's mock coordinator, like `group.initial.rebalance.delay.ms`).
    var secondsToAssigned = 0.0
    var status: Int32 = 0
    var maxRSS = 0
    var cpuSeconds = 0.0
    /// CPU seconds the dev broker used during the run.
    var brokerCPUSeconds = 0.0
    var records = 0.0
    var batches = 0.0
    var outputs = 0.0
    var fsyncs = 0.0
    var ledgerBytes = 0.0
    var recoverySeconds = 0.0
    var durable = (p50: "", p99: "")
    var delivered = (p50: "", p99: "")
    var stderr = ""
    /// The `recovered:` log line (what recovery replayed).
    var recovered = ""

    init() {}

    init(child: Child, seconds: Double, status: Int32, maxRSS: Int, cpuSeconds: Double, brokerCPUSeconds: Double) {
        self.seconds = seconds
        self.status = status
        self.maxRSS = maxRSS
        self.cpuSeconds = cpuSeconds
        self.brokerCPUSeconds = brokerCPUSeconds
        stderr = child.stderr
        for line in stderr.split(separator: "\n") {
            if line.contains("recovered:") { recovered = String(line[line.range(of: "recovered:")!.upperBound...]) }
            if line.contains("stopped:") {
                records = number(after: "stopped:", in: line) ?? 0
                batches = number(after: "record(s) in", in: line) ?? 0
                outputs = number(after: "batch(es),", in: line) ?? 0
            }
            if line.contains("timings:") {
                recoverySeconds = number(after: "recovery", in: line) ?? 0
                fsyncs = number(after: "s,", in: line) ?? 0
                ledgerBytes = number(after: "fsync(s),", in: line) ?? 0
                func quantiles(_ key: String) -> (String, String) {
                    guard let r = line.range(of: key) else { return ("-", "-") }
                    let part = line[r.upperBound...]
                    func q(_ k: String) -> String {
                        guard let v = number(after: k, in: part) else { return "-" }
                        return "\(Int(v)) ms"
                    }
                    return (q("p50"), q("p99"))
                }
                durable = quantiles("consume to durable")
                delivered = quantiles("consume to delivered")
            }
        }
    }
}

let options = Options(CommandLine.arguments)
guard FileManager.default.isExecutableFile(atPath: options.drawdown) else {
    fail("no drawdown binary at \(options.drawdown) (swift build -c release --product drawdown in the repository root)")
}
let work = options.work ?? (NSTemporaryDirectory() + "drawdown-e2e-\(UUID().uuidString)")
try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
defer { if options.work == nil { try? FileManager.default.removeItem(atPath: work) } }
let prices = work + "/prices.json"
try Data(Workload.priceBookJSON.utf8).write(to: URL(fileURLWithPath: prices))

// The broker: a separate process, as in production.
let bootstrapFile = work + "/bootstrap"
let broker = try Child(
    options.drawdown,
    ["dev-broker", "--topic", "usage:\(options.partitions)", "--topic", "balance-changes:\(options.partitions)", "--topic", "passthrough:\(options.partitions)",
     "--topic", "alerts:8", "--topic", "drawdown.dead-letters:8", "--bootstrap-file", bootstrapFile,
     "--exit-on-stdin-eof"],  // it dies with this process, whatever way that ends
    stderrPath: work + "/broker.stderr", stdin: true)
try broker.run()
defer {
    kill(broker.pid, SIGTERM)
    _ = broker.wait()
}
/// Waits for the broker's bootstrap file.
func readBootstrap() -> String {
    for _ in 0..<600 {
        if let text = try? String(contentsOfFile: bootstrapFile, encoding: .utf8) {
            let servers = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !servers.isEmpty { return servers }
        }
        usleep(100_000)
    }
    return ""
}
let bootstrap = readBootstrap()
if bootstrap.isEmpty { fail("the dev broker wrote no bootstrap file:\n" + broker.stderr) }

/// Produces `records` keyed by customer (murmur2, as producers of usage do) and waits for
/// every delivery.
func produce(_ records: ArraySlice<(bytes: [UInt8], record: WorkloadRecord)>) throws {
    let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
    var failed = 0
    for (i, r) in zip(records.indices, records) {
        let key = r.record.message.map { Array($0.customer.utf8) }
        while true {
            do {
                try producer.send(KafkaProducerRecord(topic: "usage", key: key, value: r.bytes), token: UInt64(i))
                break
            } catch {
                guard error.code == .queueFull else { throw error }
                failed += producer.poll(timeoutMs: 20).filter { !$0.succeeded }.count
            }
        }
    }
    try producer.flush(timeoutMs: 300_000)
    failed += producer.takeReports().filter { !$0.succeeded }.count
    if failed > 0 { fail("\(failed) records not delivered") }
}

// 1. Preload.
let total = options.messages + options.extraRecoveryMessages
let generated = Workload.records(WorkloadSpec(seed: 2026, customers: options.customers, messages: total))
let mainRecords = generated[..<options.messages]
let averageBytes = Double(mainRecords.reduce(0) { $0 + $1.bytes.count }) / Double(options.messages)
var t0 = now()
try produce(mainRecords)
let produceSeconds = now() - t0

// 2. Every record is there: low watermarks 0, high watermarks add up.
let tps = (0..<options.partitions).map { KafkaTopicPartition(topic: "usage", partition: $0) }
do {
    let probe = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
    var sum: Int64 = 0
    for tp in tps {
        let marks = try probe.queryWatermarks(tp)
        if marks.low != 0 { fail("\(tp): low watermark \(marks.low): the broker dropped records") }
        sum += marks.high
    }
    if sum != Int64(options.messages) { fail("high watermarks add up to \(sum), expected \(options.messages)") }
    try probe.close()
}

// 3. Raw drain by our consumer (the baseline), twice; the faster counts.
func rawDrain() throws -> Double {
    let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
    var ends: [Int32: Int64] = [:]
    for tp in tps { ends[tp.partition] = try consumer.queryWatermarks(tp).high }
    let started = now()
    try consumer.assign(Dictionary(uniqueKeysWithValues: tps.map { ($0, KafkaOffset.beginning) }))
    var next: [Int32: Int64] = [:]
    var seen = 0
    var batch = KafkaRecordBatch()
    while seen < options.messages {
        consumer.consumeBatch(into: &batch, maxRecords: 10_000, timeoutMs: 100)
        for i in batch.indices {
            let p = batch.partition(at: i)
            let o = batch.offset(at: i)
            if o >= (next[p] ?? 0) {
                next[p] = o + 1
                seen += 1
            }
        }
        if now() - started > 600 { fail("raw drain timed out") }
    }
    let seconds = now() - started
    try consumer.close()
    print("raw drain: \(seen) records in \(String(format: "%.2f", seconds)) s", to: &standardError)
    return Double(seen) / seconds
}
// Best of three: on a shared 2-core machine one drain of ~1 s varies by 2× from run to run.
let rawDrains = [try rawDrain(), try rawDrain(), try rawDrain()]
let raw = rawDrains.max()!

// 3b. The Kafka work alone of any processor that keeps SPEC §6 (one balance change per
// applied message): consume every record and produce one record of the same bytes per
// record to another topic, until every one is delivered (the run's producer settings,
// idempotent, acks=all). No decoding, engine, ledger or fsync: a ceiling, not a baseline.
/// Sends one record; false when librdkafka's queue is full (poll and send again).
func sendUnlessFull(
    _ producer: KafkaProducer, _ topic: KafkaProducer.Topic, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
    token: UInt64
) throws -> Bool {
    do {
        try producer.send(topic, key: key, value: value, token: token)
        return true
    } catch {
        if error.code == .queueFull { return false }
        throw error
    }
}

func passThrough() throws -> Double {
    let consumer = try KafkaConsumer(config: KafkaConsumerConfig(bootstrapServers: bootstrap))
    var producerConfig = KafkaProducerConfig(bootstrapServers: bootstrap)
    producerConfig.clientID = "drawdown-run"
    let producer = try KafkaProducer(config: producerConfig)
    let topic = try producer.topic("passthrough")
    let started = now()
    try consumer.assign(Dictionary(uniqueKeysWithValues: tps.map { ($0, KafkaOffset.beginning) }))
    var next: [Int32: Int64] = [:]
    var sent = 0
    var delivered = 0
    var batch = KafkaRecordBatch()
    while sent < options.messages {
        consumer.consumeBatch(into: &batch, maxRecords: 10_000, timeoutMs: 100)
        try batch.withUnsafeBufferPointer { bytes in
            for i in batch.indices {
                let p = batch.partition(at: i)
                let o = batch.offset(at: i)
                guard o >= (next[p] ?? 0) else { continue }
                next[p] = o + 1
                let key = batch.keyRange(at: i).map { UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[$0]) }
                let value = batch.valueRange(at: i).map { UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[$0]) }
                while !(try sendUnlessFull(producer, topic, key: key, value: value, token: UInt64(sent))) {
                    delivered += producer.poll(timeoutMs: 1).count
                }
                sent += 1
            }
        }
        delivered += producer.poll(timeoutMs: 0).count
        if now() - started > 600 { fail("pass-through timed out") }
    }
    while delivered < sent {
        delivered += producer.poll(timeoutMs: 10).count
        if now() - started > 600 { fail("pass-through timed out delivering") }
    }
    let seconds = now() - started
    try consumer.close()
    print("pass-through: \(sent) records consumed and produced in \(String(format: "%.2f", seconds)) s", to: &standardError)
    return Double(sent) / seconds
}
let passThroughRate = try passThrough()

// 4. drawdown run --stop-at-end.
/// Runs `drawdown run`; with `killWhen`, kill -9 it once that returns true (polled every
/// 10 ms with the stderr so far).
func runDrawdown(
    _ name: String, dataDir: String, extra: [String], killWhen: ((String) -> Bool)? = nil, perf: Bool = false
) throws -> RunFigures {
    let child = try Child(
        perf ? "/usr/bin/perf" : options.drawdown,
        (perf ? ["record", "-F", "999", "-g", "-o", work + "/perf.data", "--", options.drawdown] : []) + ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", dataDir, "--prices", prices, "--group", "bench-e2e"]
            + extra,
        stderrPath: work + "/\(name).stderr")
    let brokerCPU = broker.cpuSeconds
    let started = now()
    try child.run()
    if let killWhen {
        while !killWhen(child.stderr), now() - started < 600 { usleep(10_000) }
        kill(child.pid, SIGKILL)
    }
    // When the partitions were assigned, to 5 ms: the start of the steady drain.
    var assignedAt = 0.0
    while killWhen == nil, child.isAlive, now() - started < 600 {
        if child.stderr.contains("] assigned ") {
            assignedAt = now()
            break
        }
        usleep(5_000)
    }
    let (status, rss, cpu) = child.wait()
    var figures = RunFigures(
        child: child, seconds: now() - started, status: status, maxRSS: rss, cpuSeconds: cpu,
        brokerCPUSeconds: broker.cpuSeconds - brokerCPU)
    if assignedAt > 0 { figures.secondsToAssigned = assignedAt - started }
    return figures
}
let dataDir = work + "/data"
let main = try runDrawdown("run", dataDir: dataDir, extra: ["--stop-at-end"] + options.runArguments, perf: options.perf)
if main.status != 0 { fail("drawdown run exited \(main.status):\n" + main.stderr.suffix(3000)) }
if Int(main.records) != options.messages { fail("drawdown run applied \(Int(main.records)) records, expected \(options.messages)") }
let rate = Double(options.messages) / main.seconds
/// From the assignment on: the drain itself, without the process start and the group join.
let steadyRate = Double(options.messages) / max(0.001, main.seconds - main.secondsToAssigned)

// 5. Recovery after kill -9 on the large ledger: more input, a run killed mid-way, then a
//    run to the end whose recovery is timed — first with no snapshot (the main run wrote
//    none), then with a snapshot one batch old.
func recovery(
    _ name: String, records: ArraySlice<(bytes: [UInt8], record: WorkloadRecord)>, extra: [String], killWhen: @escaping (String) -> Bool
) throws -> RunFigures {
    try produce(records)
    let killed = try runDrawdown(name + "-killed", dataDir: dataDir, extra: extra, killWhen: killWhen)
    if killed.status != 128 + SIGKILL { fail("\(name): the run to kill ended by itself (\(killed.status))") }
    let after = try runDrawdown(name + "-recovered", dataDir: dataDir, extra: ["--stop-at-end"])
    if after.status != 0 { fail("\(name): recovery run exited \(after.status):\n" + after.stderr.suffix(3000)) }
    return after
}
// The sweep first: the recovery runs add records to the topic.
var sweepRows: [String] = []
for (n, arguments) in options.sweeps.enumerated() {
    let figures = try runDrawdown("sweep-\(n)", dataDir: work + "/sweep-\(n)", extra: ["--stop-at-end"] + arguments)
    if figures.status != 0 { fail("sweep \(arguments) exited \(figures.status):\n" + figures.stderr.suffix(3000)) }
    try? FileManager.default.removeItem(atPath: work + "/sweep-\(n)")
    let eventsPerSecond = Double(options.messages) / figures.seconds
    sweepRows.append(
        "| `\(arguments.joined(separator: " "))` | \(String(format: "%.1f", eventsPerSecond / 1000))k | \(String(format: "%.2f", eventsPerSecond / raw)) | \(Int(figures.batches)) | \(figures.durable.p50) / \(figures.durable.p99) | \(figures.delivered.p50) / \(figures.delivered.p99) | \(Int(Double(figures.maxRSS) / 1_048_576)) MiB | \(String(format: "%.1f / %.1f", figures.cpuSeconds, figures.brokerCPUSeconds)) |"
    )
}

let half = options.extraRecoveryMessages / 2
var noSnapshot = RunFigures(), withSnapshot = RunFigures()
if options.recovery {
    // Killed 0.1 s after its partitions were assigned: recovered, consuming, batches in flight.
    var assignedAt: Double?
    noSnapshot = try recovery(
        "no-snapshot", records: generated[options.messages..<options.messages + half], extra: ["--snapshot-every", "0"]
    ) { stderr in
        guard stderr.contains("assigned") else { return false }
        if assignedAt == nil { assignedAt = now() }
        return now() - assignedAt! >= 0.1
    }
    // Killed once a snapshot (written after every published batch) exists.
    withSnapshot = try recovery(
        "snapshot", records: generated[(options.messages + half)...], extra: ["--snapshot-every", "1", "--batch-max", "2000"]
    ) { _ in
        ((try? FileManager.default.contentsOfDirectory(atPath: dataDir + "/snapshots")) ?? []).contains { $0.hasSuffix(".snap") }
    }
}
let ledgerBytesOnDisk = (try? FileManager.default.subpathsOfDirectory(atPath: dataDir + "/ledger"))?.reduce(Int64(0)) {
    $0 + (((try? FileManager.default.attributesOfItem(atPath: dataDir + "/ledger/" + $1))?[.size] as? NSNumber)?.int64Value ?? 0)
} ?? 0

func f(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
print("""
| figure | value |
|---|---|
| events (partitions, low watermarks 0) | \(options.messages) (\(options.partitions)), \(options.customers) customers, \(f(averageBytes)) bytes on average |
| preload (our producer, idempotent, acks=all) | \(f(produceSeconds, 1)) s |
| raw drain, our consumer (best of 3: \(rawDrains.map { f($0 / 1000) }.joined(separator: ", "))k) | \(f(raw / 1000, 1))k events/s |
| `drawdown run --stop-at-end` (process start, recovery, group join, drain, durable, published) | \(f(main.seconds, 2)) s — \(f(rate / 1000, 1))k events/s |
| **ratio to the raw drain** | **\(f(rate / raw, 2))** |
| from the assignment (after \(f(main.secondsToAssigned, 2)) s of start and group join) to published | \(f(main.seconds - main.secondsToAssigned, 2)) s — \(f(steadyRate / 1000, 1))k events/s, **\(f(steadyRate / raw, 2)) of the raw drain** |
| pass-through ceiling: consume + produce one record per record, nothing else | \(f(passThroughRate / 1000, 1))k events/s — \(f(passThroughRate / raw, 2)) of the raw drain; the run reaches \(f(rate / passThroughRate, 2)) of it |
| batches | \(Int(main.batches)) (\(f(main.records / max(1, main.batches))) events a batch), \(f(main.batches / main.seconds, 1)) batches/s |
| fsyncs (ledger fdatasync + `published` fsync) | \(Int(main.fsyncs)), \(f(main.fsyncs / main.seconds, 1))/s |
| ledger bytes per event | \(f(main.ledgerBytes / max(1, main.records), 1)) |
| outputs published | \(Int(main.outputs)) |
| peak RSS of the run process | \(f(Double(main.maxRSS) / 1_048_576)) MiB |
| CPU seconds during the run: run process / dev broker process | \(f(main.cpuSeconds, 1)) / \(f(main.brokerCPUSeconds, 1)) |
| consume → durable, p50 / p99 | \(main.durable.p50) / \(main.durable.p99) |
| consume → balance changes delivered, p50 / p99 | \(main.delivered.p50) / \(main.delivered.p99) |
| recovery after kill -9, no snapshot (ledger of ~\(options.messages + half) events) | \(f(noSnapshot.recoverySeconds, 2)) s (\(noSnapshot.recovered.prefix(150))) |
| recovery after kill -9, recent snapshot (\(total) events, \(f(Double(ledgerBytesOnDisk) / 1_048_576)) MiB ledger) | \(f(withSnapshot.recoverySeconds, 2)) s (\(withSnapshot.recovered.prefix(150))) |
""")
if !sweepRows.isEmpty {
    print("")
    print("| run arguments | events/s | ratio | batches | consume → durable p50 / p99 | consume → delivered p50 / p99 | peak RSS | CPU s run / broker |")
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for row in sweepRows { print(row) }
}
