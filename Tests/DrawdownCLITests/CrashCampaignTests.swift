import DrawdownCore
import DrawdownKafka
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown run` against the built dev broker, killed with SIGKILL at random instants
/// (issue 4: crash campaign, torn write, corruption). Every subprocess is killed at the end.
@Suite(.serialized) struct CrashCampaignTests {
    static let inputPartitions: Int32 = 16
    // Re-sends after kills add to the balance topic; spread over many partitions it stays far
    // below the dev broker's per-partition retention (about 5 MiB), so nothing is dropped.
    static let balancePartitions: Int32 = 128
    static let killsMin = 20

    /// The seed: `DRAWDOWN_CAMPAIGN_SEED` to replay a run, else a fresh one (printed).
    static func seed() -> UInt64 {
        if let text = ProcessInfo.processInfo.environment["DRAWDOWN_CAMPAIGN_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...UInt64(UInt32.max))
    }

    @Test(.timeLimit(.minutes(20))) func killNineAtRandomInstantsEndsEqualToAnUninterruptedRun() throws {
        let seed = Self.seed()
        print("crash campaign seed: \(seed) (replay with DRAWDOWN_CAMPAIGN_SEED=\(seed))")
        let dir = try TemporaryDirectory("campaign")
        defer { dir.cleanup() }
        let broker = try TestDevBroker(topics: [
            "usage:\(Self.inputPartitions)",
            "balance-changes:\(Self.balancePartitions)", "alerts:8", "drawdown.dead-letters:8",
            "ref-balance-changes:\(Self.balancePartitions)", "ref-alerts:8", "ref-dead-letters:8",
        ])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let prices = dir.url.appendingPathComponent("prices.json").path
        try Data(Workload.priceBookJSON.utf8).write(to: URL(fileURLWithPath: prices))

        let spec = WorkloadSpec(seed: seed, customers: 2_000, messages: 200_000)
        let records = Workload.records(spec)
        try RunHarness.produce(records, topic: "usage", bootstrap: bootstrap)
        let input = try RunHarness.watermarks(topic: "usage", partitions: Self.inputPartitions, bootstrap: bootstrap)
        #expect(input.allSatisfy { $0.low == 0 }, "the broker dropped input: \(input)")
        #expect(input.reduce(0) { $0 + $1.high } == Int64(records.count))

        func runArguments(_ dataDir: String, prefix: String, group: String) -> [String] {
            [
                "run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", dataDir, "--prices", prices,
                "--group", group, "--stop-at-end", "--shards", "2",
                "--balance-topic", prefix + "balance-changes", "--alert-topic", prefix + "alerts",
                "--dead-letter-topic", prefix + (prefix.isEmpty ? "drawdown.dead-letters" : "dead-letters"),
            ]
        }

        // The uninterrupted run.
        let reference = dir.url.appendingPathComponent("reference").path
        let referenceLog = dir.url.appendingPathComponent("reference.log").path
        let uninterrupted = try RunHarness.runToEnd(runArguments(reference, prefix: "ref-", group: "reference"), stderrPath: referenceLog)
        #expect(uninterrupted.status == 0, "\(RunHarness.text(referenceLog).suffix(3_000))")
        print("uninterrupted run: \(String(format: "%.1f", uninterrupted.seconds)) s")

        // The campaign: kill -9 at seeded random instants, restart, until a run exits 0.
        // Each kill lands in one of three phases, chosen at random: "start-up" (recovery,
        // replay, joining the group), "processing" (a random time after the partitions are
        // assigned), or "committed" (just after this run made a batch durable: while its
        // outputs are published and its offsets committed, or the next batch fills). The kills
        // are paced by ledger growth, not only by time, so that at least `killsMin` of them
        // happen before the stream is done however fast the machine drains it: a start may add
        // at most an equal share of what is left before 90 % of the reference ledger's bytes
        // (it is killed as soon as its ledger passes that cap, "+cap" in the list below), and
        // once the ledger is past 90 %, only start-up kills. Each start uses a group of its
        // own: a kill -9'd member stays in its group until its session times out, and the
        // ledger, not the group, holds the offsets.
        let crashed = dir.url.appendingPathComponent("crashed").path
        let crashLog = dir.url.appendingPathComponent("crashed.log").path
        var random = SeededGenerator(seed: seed)
        let referenceBytes = RunHarness.ledgerBytes(dataDirectory: reference)
        var kills = 0, starts = 0
        var killedAt: [(phase: String, seconds: Double, ledgerBytes: Int64)] = []
        let campaignStart = Date()
        while true {
            starts += 1
            let logStart = RunHarness.text(crashLog).utf8.count
            let bytesBefore = RunHarness.ledgerBytes(dataDirectory: crashed)
            let child = try RunHarness.Child(runArguments(crashed, prefix: "", group: "crashed-\(starts)"), stderrPath: crashLog)
            if kills < Self.killsMin {
                let headroom = max(0, referenceBytes * 9 / 10 - bytesBefore)
                let cap = bytesBefore + headroom / Int64(Self.killsMin - kills)
                let late = headroom == 0
                let draw = random.uniform(0...1)
                var phase = "start-up"
                var delay = random.uniform(0.05...1.5)
                if !late && draw >= 0.2 {
                    // Both other phases start once the partitions are assigned.
                    let deadline = Date().addingTimeInterval(60)
                    while child.isRunning && Date() < deadline
                        && !RunHarness.text(crashLog).utf8.dropFirst(logStart).split(separator: UInt8(ascii: "\n"))
                            .contains(where: { String(decoding: $0, as: UTF8.self).contains("assigned ") })
                    {
                        usleep(20_000)
                    }
                    if draw < 0.6 {
                        phase = "processing"
                        delay = Date().timeIntervalSince(child.started) + random.uniform(0.05...2.5)
                    } else {
                        phase = "committed"
                        let deadline = Date().addingTimeInterval(120)
                        while child.isRunning && Date() < deadline && RunHarness.ledgerBytes(dataDirectory: crashed) <= bytesBefore {
                            usleep(5_000)
                        }
                        delay = Date().timeIntervalSince(child.started) + random.uniform(0...1.5)
                    }
                }
                let until = child.started.addingTimeInterval(delay)
                var capped = false
                while child.isRunning && Date() < until {
                    if RunHarness.ledgerBytes(dataDirectory: crashed) > cap {
                        capped = true
                        break
                    }
                    usleep(5_000)
                }
                if child.isRunning {
                    child.kill9()
                    kills += 1
                    let seconds = capped ? Date().timeIntervalSince(child.started) : delay
                    killedAt.append((capped ? phase + "+cap" : phase, seconds, RunHarness.ledgerBytes(dataDirectory: crashed)))
                    continue
                }
            }
            let status = try child.wait(seconds: 600)
            if status == 0 { break }
            Issue.record("run exited \(status) after \(kills) kills: \(RunHarness.text(crashLog).suffix(3_000))")
            return
        }
        let campaignSeconds = Date().timeIntervalSince(campaignStart)
        print(
            "crash campaign: \(kills) kills, \(starts) starts, \(String(format: "%.1f", campaignSeconds)) s; kill instants (phase, s after start / ledger bytes then): "
                + killedAt.map { "\($0.phase) \(String(format: "%.2f", $0.seconds))/\($0.ledgerBytes)" }.joined(separator: ", "))
        #expect(kills >= Self.killsMin)
        let finalBytes = RunHarness.ledgerBytes(dataDirectory: crashed)
        #expect(killedAt.contains { $0.ledgerBytes > 0 && $0.ledgerBytes < finalBytes }, "no kill landed while the ledger was growing")

        // Same ledger, entry for entry, and the same state.
        let referenceLedger = try drawdown(["ledger", "--data-dir", reference])
        let crashedLedger = try drawdown(["ledger", "--data-dir", crashed])
        #expect(referenceLedger.status == 0 && crashedLedger.status == 0)
        let referenceLines = lines(referenceLedger.stdoutText)
        let crashedLines = lines(crashedLedger.stdoutText)
        #expect(referenceLines.count > records.count / 2)
        #expect(crashedLines.count == referenceLines.count)
        // Batch boundaries differ between runs; per partition the entries are the same sequence.
        #expect(Self.byPartition(crashedLines) == Self.byPartition(referenceLines))
        #expect(Set(crashedLines).count == crashedLines.count, "an entry is doubled")
        let referenceState = try drawdown(["state", "--data-dir", reference])
        let crashedState = try drawdown(["state", "--data-dir", crashed])
        #expect(referenceState.status == 0, "\(referenceState.stderrText)")
        #expect(crashedState.status == 0, "\(crashedState.stderrText)")
        #expect(crashedState.stdout == referenceState.stdout)
        for dataDir in [reference, crashed] {
            let verify = try drawdown(["ledger", "verify", "--data-dir", dataDir])
            #expect(verify.status == 0, "\(verify.stdoutText.prefix(3_000))")
        }

        // Every ledger seq reached the balance-change topic at least once.
        let balance = try RunHarness.watermarks(topic: "balance-changes", partitions: Self.balancePartitions, bootstrap: bootstrap)
        #expect(balance.allSatisfy { $0.low == 0 }, "the broker dropped balance changes: \(balance)")
        var published = Set<Int64>()
        for value in try RunHarness.drainValues(topic: "balance-changes", partitions: Self.balancePartitions, bootstrap: bootstrap) {
            let change = try JSONSerialization.jsonObject(with: Data(value)) as! [String: Any]
            let partition = change["partition"] as! Int
            published.insert(Int64(partition) << 40 | Int64(change["seq"] as! Int))
            for entry in change["entries"] as? [[String: Any]] ?? [] {
                published.insert(Int64(partition) << 40 | Int64(entry["seq"] as! Int))
            }
        }
        var missing: [String] = []
        for line in crashedLines {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let key = Int64(entry["partition"] as! Int) << 40 | Int64(entry["seq"] as! Int)
            if !published.contains(key) { missing.append("\(entry["partition"]!)/\(entry["seq"]!)") }
        }
        #expect(missing.isEmpty, "\(missing.count) ledger seqs never on balance-changes, e.g. \(missing.prefix(10))")
    }

    @Test(.timeLimit(.minutes(10))) func tornLastBatchIsCutAndRedoneAndAFlippedByteRefusesToStart() throws {
        let dir = try TemporaryDirectory("run-torn")
        defer { dir.cleanup() }
        let broker = try TestDevBroker(topics: ["usage:8", "balance-changes:16", "alerts:4", "drawdown.dead-letters:4"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let prices = dir.url.appendingPathComponent("prices.json").path
        try Data(Workload.priceBookJSON.utf8).write(to: URL(fileURLWithPath: prices))
        let records = Workload.records(WorkloadSpec(seed: 23, customers: 300, messages: 20_000))
        try RunHarness.produce(records, topic: "usage", bootstrap: bootstrap)
        func arguments(_ dataDir: String, group: String) -> [String] {
            ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", dataDir, "--prices", prices,
             "--group", group, "--stop-at-end", "--batch-max", "500"]
        }
        let reference = dir.url.appendingPathComponent("reference").path
        let torn = dir.url.appendingPathComponent("torn").path
        let log = dir.url.appendingPathComponent("run.log").path
        #expect(try RunHarness.runToEnd(arguments(reference, group: "a"), stderrPath: log).status == 0, "\(RunHarness.text(log).suffix(2_000))")
        #expect(try RunHarness.runToEnd(arguments(torn, group: "b"), stderrPath: log).status == 0, "\(RunHarness.text(log).suffix(2_000))")

        // Tear the last batch: cut its record in the middle.
        let lastSegment = try #require(try RunHarness.segments(dataDirectory: torn).last)
        let last = try #require(try RunHarness.segmentRecords(lastSegment).last)
        #expect(truncate(lastSegment, off_t(last.start + (last.end - last.start) / 2)) == 0)
        let tornLog = dir.url.appendingPathComponent("torn.log").path
        let restarted = try RunHarness.runToEnd(arguments(torn, group: "b"), stderrPath: tornLog)
        let tornText = RunHarness.text(tornLog)
        #expect(restarted.status == 0, "\(tornText.suffix(2_000))")
        #expect(tornText.contains("torn") && tornText.contains("batch \(last.batch)"), "the cut is not logged: \(tornText.prefix(2_000))")
        let a = try drawdown(["ledger", "--data-dir", reference]), b = try drawdown(["ledger", "--data-dir", torn])
        #expect(Self.byPartition(lines(b.stdoutText)) == Self.byPartition(lines(a.stdoutText)))
        #expect(!a.stdout.isEmpty)
        #expect(try drawdown(["state", "--data-dir", torn]).stdout == (try drawdown(["state", "--data-dir", reference]).stdout))
        #expect(try drawdown(["ledger", "verify", "--data-dir", torn]).status == 0)

        // Flip a byte inside an earlier batch: verify names it, run refuses to start.
        var earlier: [(file: String, batch: UInt64, start: Int64, end: Int64)] = []
        for segment in try RunHarness.segments(dataDirectory: reference) {
            earlier += try RunHarness.segmentRecords(segment).map { (segment, $0.batch, $0.start, $0.end) }
        }
        earlier.removeLast()
        try #require(!earlier.isEmpty, "the run wrote a single batch")
        let victim = earlier[earlier.count / 2]
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: victim.file))
        let at = UInt64(victim.start + 96 + (victim.end - victim.start - 96) / 2)
        try handle.seek(toOffset: at)
        let byte = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: at)
        try handle.write(contentsOf: [byte ^ 0x01])
        try handle.close()
        let verify = try drawdown(["ledger", "verify", "--data-dir", reference])
        #expect(verify.status == 1)
        #expect(verify.stdoutText.contains("batch \(victim.batch) "), "\(verify.stdoutText.prefix(2_000))")
        let refusedLog = dir.url.appendingPathComponent("refused.log").path
        let refused = try RunHarness.runToEnd(arguments(reference, group: "a"), stderrPath: refusedLog, timeout: 120)
        let refusedText = RunHarness.text(refusedLog)
        #expect(refused.status != 0)
        #expect(refusedText.contains("batch \(victim.batch)"), "\(refusedText.suffix(2_000))")
    }

    /// Ledger lines grouped by their partition, in order.
    static func byPartition(_ lines: [String]) -> [Int: [String]] {
        var out: [Int: [String]] = [:]
        for line in lines {
            guard let range = line.range(of: #","partition":"#) else { continue }
            let digits = line[range.upperBound...].prefix { $0.isNumber }
            out[Int(digits) ?? -1, default: []].append(line)
        }
        return out
    }
}
