import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown process` through the built binary.
@Suite struct ProcessCommandTests {
    let binary = drawdownBinaryURL()

    @Test func workedExampleThroughTheBinary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drawdown-process-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state.json").path
        let rejects = dir.appendingPathComponent("rejects.jsonl").path
        let alerts = dir.appendingPathComponent("alerts.jsonl").path
        let result = try runProcess(
            binary,
            [
                "process", WorkedExample.directory.appendingPathComponent("mixed.jsonl").path,
                "--prices", WorkedExample.directory.appendingPathComponent("prices.json").path,
                "--state-out", state, "--rejects-out", rejects, "--alerts-out", alerts,
            ])
        #expect(result.status == 0, "stderr: \(result.stderrText)")
        let expected = try LedgerComparison.jsonLines(WorkedExample.file("mixed.ledger.jsonl")).map(LedgerComparison.normalized)
        let actual = try LedgerComparison.jsonLines(result.stdout).map(LedgerComparison.normalized)
        #expect(actual == expected)
        #expect(
            try LedgerComparison.normalizedState(Data(contentsOf: URL(fileURLWithPath: state)))
                == LedgerComparison.normalizedState(WorkedExample.file("mixed.state.json")))
        let rejectLines = try LedgerComparison.jsonLines(Data(contentsOf: URL(fileURLWithPath: rejects)))
        let reasons = Set(rejectLines.compactMap { $0["reason"] as? String })
        #expect(reasons.isSuperset(of: ["malformed", "invalid_field", "too_late", "conflict", "unknown_grant"]))
        #expect(rejectLines.allSatisfy { ($0["line"] as? Int ?? 0) > 0 && $0["raw"] is String })
        // Alerts are JSON lines with a known type.
        let alertLines = try LedgerComparison.jsonLines(Data(contentsOf: URL(fileURLWithPath: alerts)))
        #expect(!alertLines.isEmpty)
        #expect(alertLines.allSatisfy { ["balance_low", "balance_exhausted", "grant_expired"].contains($0["type"] as? String ?? "") })
    }

    @Test func readsStdinAndWorksWithoutAPriceBookWhenCostIsGiven() throws {
        let input = """
            {"type":"grant","id":"g1","customer":"c1","timestamp":"2026-11-24T12:00:00Z","amount":"10"}

            {"id":"e1","customer":"c1","timestamp":"2026-11-24T12:01:00Z","cost":"2.5"}
            {"id":"e2","customer":"c1","timestamp":"2026-11-24T12:02:00Z","meter":"gpu","quantity":1}
            """
        let result = try runProcess(binary, ["process", "-"], stdin: Data(input.utf8))
        #expect(result.status == 0)
        let entries = try LedgerComparison.jsonLines(result.stdout)
        #expect(entries.map { $0["type"] as? String } == ["grant", "draw"])
        #expect(entries.last?["balance"] as? String == "7.5")
    }

    @Test func toolErrorsExitNonZeroWithAMessage() throws {
        let missing = try runProcess(binary, ["process", "/nonexistent/input.jsonl"])
        #expect(missing.status != 0)
        #expect(missing.stderrText.contains("/nonexistent/input.jsonl"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drawdown-prices-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let prices = dir.appendingPathComponent("prices.json")
        try Data(#"{"meters": {"gpu": {"unit_price": "0.0000000001"}}}"#.utf8).write(to: prices)
        let bad = try runProcess(binary, ["process", "-", "--prices", prices.path], stdin: Data())
        #expect(bad.status != 0)
        #expect(bad.stderrText.contains("meters.gpu.unit_price"))

        let duration = try runProcess(binary, ["process", "-", "--dedupe-window", "soon"], stdin: Data())
        #expect(duration.status != 0)
        #expect(duration.stderrText.contains("--dedupe-window"))
    }
}
