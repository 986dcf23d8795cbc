import DrawdownCore
import DrawdownLedger
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown state` through the built binary, on data directories written in-process.
@Suite struct StateCommandTests {
    @Test func rebuildsTheStateTheEnginesHadAfterTheLastBatch() throws {
        let dir = try TemporaryDirectory("state")
        defer { dir.cleanup() }
        let fixture = try LedgerFixture(directory: dir.url, spec: WorkloadSpec(seed: 19, customers: 50, messages: 3_000))
        let prices = dir.url.appendingPathComponent("prices.json")
        try Data(Workload.priceBookJSON.utf8).write(to: prices)

        let result = try drawdown(["state", "--data-dir", dir.url.path, "--prices", prices.path])
        #expect(result.status == 0, "stderr: \(result.stderrText)")
        #expect(result.stdout == Data(fixture.state))
        #expect(result.stderrText.isEmpty)

        // Other settings than the ledger was written with: re-applying disagrees, and it says so.
        let wrong = try drawdown(["state", "--data-dir", dir.url.path])
        #expect(wrong.status == 1)
        #expect(wrong.stderrText.contains("re-applying its inputs gives other entries"), "\(wrong.stderrText)")
        #expect(wrong.stdout.isEmpty)
    }

    @Test func missingDataDirectoryIsAnErrorNotAnEmptyState() throws {
        let dir = try TemporaryDirectory("state-missing")
        defer { dir.cleanup() }
        let result = try drawdown(["state", "--data-dir", dir.url.appendingPathComponent("nope").path])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("no ledger under"))
        #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("nope").path))
    }
}
