import DrawdownCore
import DrawdownKafka
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown replay` through the built binary, on a data directory written by `drawdown run`
/// against the dev broker; `--apply` killed with SIGKILL at each of its steps and rerun.
@Suite(.serialized) struct ReplayCommandTests {
    /// The workload's price book with three prices changed.
    static let newPrices = Workload.priceBookJSON
        .replacingOccurrences(of: #""unit_price": "0.0025""#, with: #""unit_price": "0.004""#)
        .replacingOccurrences(of: #""unit_price": "0.01", "currency": "usd""#, with: #""unit_price": "0.007", "currency": "usd""#)
        .replacingOccurrences(of: #""small": "0.0000005""#, with: #""small": "0.0000011""#)

    static func copy(_ from: String, to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
        try? FileManager.default.removeItem(atPath: to + "/ledger/LOCK")
    }

    /// `drawdown state` and `drawdown ledger` of a data directory, and its saved settings.
    static func observable(_ dataDir: String) throws -> [Data] {
        let state = try drawdown(["state", "--data-dir", dataDir])
        let ledger = try drawdown(["ledger", "--data-dir", dataDir])
        #expect(state.status == 0 && ledger.status == 0, "\(state.stderrText) \(ledger.stderrText)")
        let settings = FileManager.default.contents(atPath: dataDir + "/engine-settings") ?? Data()
        return [state.stdout, ledger.stdout, settings]
    }

    @Test(.timeLimit(.minutes(15))) func applyKilledAtEachStepAndRerunEndsAsAnUninterruptedApply() throws {
        let dir = try TemporaryDirectory("replay-cli")
        defer { dir.cleanup() }
        let broker = try TestDevBroker(topics: ["usage:4", "balance-changes:8", "fresh-balances:8", "alerts:2", "drawdown.dead-letters:2"])
        defer { broker.stop() }
        let bootstrap = broker.bootstrapServers
        let oldPrices = dir.url.appendingPathComponent("old.json").path
        let newPrices = dir.url.appendingPathComponent("new.json").path
        try Data(Workload.priceBookJSON.utf8).write(to: URL(fileURLWithPath: oldPrices))
        try Data(Self.newPrices.utf8).write(to: URL(fileURLWithPath: newPrices))
        let records = Workload.records(WorkloadSpec(seed: 23, customers: 150, messages: 6_000))
        try RunHarness.produce(records, topic: "usage", bootstrap: bootstrap)

        let base = dir.url.appendingPathComponent("base").path
        let log = dir.url.appendingPathComponent("run.log").path
        let run = try RunHarness.runToEnd(
            ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", base, "--prices", oldPrices, "--stop-at-end",
             "--batch-max", "400", "--snapshot-every", "4", "--group", "replay-base"], stderrPath: log)
        #expect(run.status == 0, "\(RunHarness.text(log).suffix(2_000))")
        let before = try Self.observable(base)

        func replay(_ dataDir: String, _ extra: [String], environment: [String: String]? = nil) throws -> ProcessResult {
            try runProcess(
                drawdownBinaryURL(),
                ["replay", "--brokers", bootstrap, "--topic", "usage", "--data-dir", dataDir, "--from", "beginning"] + extra,
                environment: environment.map { ProcessInfo.processInfo.environment.merging($0) { $1 } })
        }

        // Same prices: a dry run and an apply find nothing and write nothing.
        let report = dir.url.appendingPathComponent("same.json").path
        let same = try replay(base, ["--dry-run", "--report", report])
        #expect(same.status == 0, "\(same.stderrText)")
        #expect(same.stdoutText.contains("no differences"), "\(same.stdoutText)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        #expect(json["differences"] as? Bool == false)
        #expect((json["corrections"] as? [Any])?.isEmpty == true)
        let sameApply = try replay(base, ["--apply"])
        #expect(sameApply.status == 0 && sameApply.stdoutText.contains("applied: nothing"), "\(sameApply.stderrText)")
        #expect(try Self.observable(base) == before)

        // A dry run with the new prices: differences reported, nothing written.
        let dry = try replay(base, ["--dry-run", "--prices", newPrices, "--report", report, "--top-events", "5"])
        #expect(dry.status == 0, "\(dry.stderrText)")
        print(dry.stdoutText)
        #expect(dry.stdoutText.contains("customer/currency pair(s) differ") && dry.stdoutText.contains("totals:"))
        #expect(dry.stderrText.contains("events/s"), "\(dry.stderrText)")
        let dryJSON = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        #expect(dryJSON["differences"] as? Bool == true && dryJSON["applied"] is NSNull)
        #expect((dryJSON["events_changed_most"] as? [Any])?.count == 5)
        #expect(((dryJSON["totals"] as? [[String: Any]]) ?? []).map { $0["currency"] as? String } == ["credits", "usd"])
        #expect(!((dryJSON["corrections"] as? [Any]) ?? []).isEmpty)
        #expect(try Self.observable(base) == before)

        // The uninterrupted apply with the new prices; then once more: nothing.
        let reference = dir.url.appendingPathComponent("reference").path
        try Self.copy(base, to: reference)
        let applied = try replay(reference, ["--apply", "--prices", newPrices, "--report", report])
        #expect(applied.status == 0, "\(applied.stderrText)")
        #expect(applied.stdoutText.contains("applied: correction"), "\(applied.stdoutText)")
        let want = try Self.observable(reference)
        #expect(want[0] != before[0])
        #expect(want[2].suffix(Self.newPrices.utf8.count) == Data(Self.newPrices.utf8))
        let verify = try drawdown(["ledger", "verify", "--data-dir", reference])
        #expect(verify.status == 0, "\(verify.stdoutText) \(verify.stderrText)")
        let adjusts = want[1].split(separator: UInt8(ascii: "\n")).filter { String(decoding: $0, as: UTF8.self).contains(#""type":"adjust""#) }
        #expect(!adjusts.isEmpty)
        // A range that stops before the ledger's end cannot be applied: exit 2, the report printed.
        let partial = try replay(reference, ["--apply", "--prices", oldPrices, "--to", "batch:3"])
        #expect(partial.status == 2 && partial.stderrText.contains("omit --to"), "\(partial.status) \(partial.stderrText)")
        #expect(partial.stdoutText.contains("replay of batches 1…2"), "\(partial.stdoutText)")
        #expect(try Self.observable(reference) == want)
        let again = try replay(reference, ["--apply", "--prices", newPrices])
        #expect(again.status == 0 && again.stdoutText.contains("applied: nothing"), "\(again.stdoutText) \(again.stderrText)")
        #expect(try Self.observable(reference) == want)

        // The corrected state is the state of a run over the same input with the new prices.
        let fresh = dir.url.appendingPathComponent("fresh").path
        let freshRun = try RunHarness.runToEnd(
            ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", fresh, "--prices", newPrices, "--stop-at-end",
             "--group", "replay-fresh", "--balance-topic", "fresh-balances"], stderrPath: log)
        #expect(freshRun.status == 0, "\(RunHarness.text(log).suffix(2_000))")
        let freshState = try drawdown(["state", "--data-dir", fresh])
        #expect(freshState.stdout == want[0])

        // kill -9 at each step of the apply, then rerun: the same end state.
        for step in ["after-record", "after-append", "after-publish"] {
            let crashed = dir.url.appendingPathComponent("crashed-\(step)").path
            try Self.copy(base, to: crashed)
            let killed = try replay(crashed, ["--apply", "--prices", newPrices], environment: ["DRAWDOWN_REPLAY_KILL_AT": step])
            #expect(killed.status == SIGKILL, "\(step): \(killed.status) \(killed.stderrText)")
            let rerun = try replay(crashed, ["--apply", "--prices", newPrices])
            #expect(rerun.status == 0, "\(step): \(rerun.stderrText)")
            if step == "after-append" {
                #expect(rerun.stderrText.contains("re-sent"), "\(rerun.stderrText)")
            }
            #expect(try Self.observable(crashed) == want, "\(step)")
        }
        // And at a random instant.
        var random = SeededGenerator(seed: UInt64.random(in: 1...UInt64(UInt32.max)))
        let crashed = dir.url.appendingPathComponent("crashed-random").path
        try Self.copy(base, to: crashed)
        let childLog = dir.url.appendingPathComponent("random.log").path
        let child = try RunHarness.Child(
            ["replay", "--brokers", bootstrap, "--topic", "usage", "--data-dir", crashed, "--from", "beginning", "--apply",
             "--prices", newPrices], stderrPath: childLog)
        usleep(UInt32(random.uniform(0.05...1.5) * 1_000_000))
        child.kill9()
        let rerun = try replay(crashed, ["--apply", "--prices", newPrices])
        #expect(rerun.status == 0, "\(rerun.stderrText)")
        #expect(try Self.observable(crashed) == want)

        // `run` goes on from the corrected state with the new prices (nothing new to read).
        let after = try RunHarness.runToEnd(
            ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", reference, "--prices", newPrices, "--stop-at-end",
             "--group", "replay-after"], stderrPath: log)
        #expect(after.status == 0, "\(RunHarness.text(log).suffix(2_000))")
        #expect(try Self.observable(reference) == want)

        // --apply while the processor holds the data directory: refused, exit 2.
        let holdLog = dir.url.appendingPathComponent("hold.log").path
        let holder = try RunHarness.Child(
            ["run", "--brokers", bootstrap, "--topic", "usage", "--data-dir", reference, "--prices", newPrices, "--group", "replay-hold"],
            stderrPath: holdLog)
        defer { holder.kill9() }
        let deadline = Date().addingTimeInterval(60)
        while !RunHarness.text(holdLog).contains("recovered"), Date() < deadline { usleep(50_000) }
        let refused = try replay(reference, ["--apply", "--prices", newPrices])
        #expect(refused.status == 2 && refused.stderrText.contains("stop `drawdown run` first"), "\(refused.status) \(refused.stderrText)")
    }
}
