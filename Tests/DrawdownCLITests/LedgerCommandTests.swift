import DrawdownCore
import DrawdownLedger
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown ledger` and `drawdown ledger verify` through the built binary, on data
/// directories written in-process (no Kafka).
@Suite struct LedgerCommandTests {
    static func spec(seed: UInt64 = 7) -> WorkloadSpec {
        WorkloadSpec(seed: seed, customers: 60, messages: 4_000)
    }

    @Test func printsEveryEntryInLedgerOrderAndFiltersByCustomer() throws {
        let dir = try TemporaryDirectory("ledger-print")
        defer { dir.cleanup() }
        let fixture = try LedgerFixture(directory: dir.url, spec: Self.spec())
        #expect(fixture.batches.count == 16)
        #expect(Set(fixture.records.map(\.file)).count > 1, "the fixture should span several segments")
        #expect(fixture.expectedLines.count > 3_000)

        let all = try drawdown(["ledger", "--data-dir", dir.url.path])
        #expect(all.status == 0, "stderr: \(all.stderrText)")
        #expect(lines(all.stdoutText) == fixture.expectedLines)
        #expect(all.stderrText.isEmpty)
        // `print` is the default subcommand.
        let explicit = try drawdown(["ledger", "print", "--data-dir", dir.url.path])
        #expect(explicit.stdout == all.stdout)

        // Per partition, the entries are exactly what `drawdown process` gives for that partition.
        let printed = try LedgerComparison.jsonLines(all.stdout)
        for p in 0..<fixture.partitions {
            let mine = printed.filter { ($0["partition"] as? Int) == Int(p) }.map(LedgerComparison.normalized)
            let offline = try fixture.offlineEntries(partition: p).map {
                LedgerComparison.normalized(try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])
            }
            #expect(!mine.isEmpty)
            #expect(mine == offline, "partition \(p)")
        }

        let customer = WorkloadGenerator.customerName(3)
        let one = try drawdown(["ledger", "--data-dir", dir.url.path, "--customer", customer])
        #expect(one.status == 0)
        let expected = fixture.expectedLines.filter { $0.contains(#""customer":"\#(customer)""#) }
        #expect(!expected.isEmpty)
        #expect(lines(one.stdoutText) == expected)
    }

    @Test func verifyPassesOnASoundLedger() throws {
        let dir = try TemporaryDirectory("ledger-verify")
        defer { dir.cleanup() }
        let fixture = try LedgerFixture(directory: dir.url, spec: Self.spec(seed: 11), partitions: 3)
        // A marker batch (no entries, no payload) at the end is sound too.
        do {
            let store = try LedgerStore.open(dataDirectory: dir.url.path)
            try store.append(LedgerBatch(number: store.lastBatchNumber + 1, previousHash: store.lastHash, kind: .marker))
        }
        let result = try drawdown(["ledger", "verify", "--data-dir", dir.url.path])
        #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
        let out = lines(result.stdoutText)
        #expect(out.count == 1)
        #expect(out.first?.hasPrefix("ledger ok: \(fixture.batches.count + 1) batches") == true, "\(out)")
        let printed = try drawdown(["ledger", "--data-dir", dir.url.path])
        #expect(lines(printed.stdoutText) == fixture.expectedLines)
    }

    @Test func tornLastRecordIsReportedThenRecoveredUpToThePreviousBatch() throws {
        let dir = try TemporaryDirectory("ledger-torn")
        defer { dir.cleanup() }
        let fixture = try LedgerFixture(directory: dir.url, spec: Self.spec(seed: 13))
        let last = fixture.records.last!
        // Cut the last record in the middle of its body.
        let cutAt = last.start + (last.end - last.start) / 2
        #expect(truncate(last.file, off_t(cutAt)) == 0)

        let verify = try drawdown(["ledger", "verify", "--data-dir", dir.url.path])
        #expect(verify.status == 1)
        #expect(verify.stdoutText.contains("torn tail: batch \(last.batch)"), "\(verify.stdoutText)")
        // Read-only: verify cut nothing.
        #expect(try fileSize(last.file) == cutAt)

        // `ledger` prints everything before the torn batch and says why it stops there.
        let previousLines = try expectedLines(fixture, throughBatch: last.batch - 1)
        let printed = try drawdown(["ledger", "--data-dir", dir.url.path])
        #expect(printed.status == 0)
        #expect(lines(printed.stdoutText) == previousLines)
        #expect(printed.stderrText.contains("torn"))

        // The next open recovers: cuts the torn record, keeps every earlier batch intact.
        do {
            let store = try LedgerStore.open(dataDirectory: dir.url.path)
            #expect(store.recoveryReport.tornTail?.batchNumber == last.batch)
            #expect(store.recoveryReport.bytesCut == cutAt - last.start)
            #expect(store.lastBatchNumber == last.batch - 1)
            let reader = store.batches(from: 1)
            var readBack: [LedgerBatch] = []
            while let batch = try reader.next() { readBack.append(batch) }
            #expect(readBack == Array(fixture.batches.dropLast()))
        }
        #expect(try fileSize(last.file) == last.start)
        let after = try drawdown(["ledger", "verify", "--data-dir", dir.url.path])
        #expect(after.status == 0, "\(after.stdoutText)")
    }

    @Test func flippedByteInAnEarlierBatchFailsVerifyNamingTheBatch() throws {
        let dir = try TemporaryDirectory("ledger-flip")
        defer { dir.cleanup() }
        let fixture = try LedgerFixture(directory: dir.url, spec: Self.spec(seed: 17))
        let victim = fixture.records[4]
        #expect(victim.batch == 5)
        try flipByte(in: victim.file, at: victim.start + (victim.end - victim.start) * 2 / 3)

        let verify = try drawdown(["ledger", "verify", "--data-dir", dir.url.path])
        #expect(verify.status == 1)
        let problems = lines(verify.stdoutText).filter { $0.hasPrefix("storage:") }
        #expect(!problems.isEmpty, "\(verify.stdoutText)")
        #expect(problems.allSatisfy { $0.contains("batch 5 ") }, "\(problems)")
        #expect(verify.stdoutText.contains("ledger verify FAILED"))

        let printed = try drawdown(["ledger", "--data-dir", dir.url.path])
        #expect(printed.status != 0)
        #expect(printed.stderrText.contains("batch 5"), "\(printed.stderrText)")
    }

    @Test func wrongBalanceAndSequenceGapAreNamed() throws {
        let dir = try TemporaryDirectory("ledger-crafted")
        defer { dir.cleanup() }
        let store = try LedgerStore.open(dataDirectory: dir.url.path)
        let t = EventTime.parse("2026-11-24T12:00:00Z")!
        func entry(_ seq: UInt64, _ type: EntryType, grant: String?, amount: Int, balance: Int, source: String) -> LedgerEntry {
            LedgerEntry(
                seq: seq, type: type, customer: "c1", currency: "credits", grant: grant, amount: Credits(units: amount),
                source: source, timestamp: t, balance: Credits(units: balance))
        }
        func batch(_ entries: [LedgerEntry], range: ClosedRange<UInt64>, offset: Int64) -> LedgerBatch {
            LedgerBatch(
                number: store.lastBatchNumber + 1, previousHash: store.lastHash,
                positions: [InputPosition(topic: "usage", partition: 2, nextOffset: offset)],
                sequenceRanges: [SequenceRange(partition: 2, firstSeq: range.lowerBound, lastSeq: range.upperBound)],
                payload: BatchPayload(sections: [PartitionSection(partition: 2, entries: entries)]).encode())
        }
        // Batch 1: a grant of 10 (effective), then a draw of 3 that claims a balance of 8.
        try store.append(batch([
            entry(1, .grant, grant: "g1", amount: 10, balance: 10, source: "g1"),
            entry(2, .draw, grant: "g1", amount: -3, balance: 8, source: "u1"),
        ], range: 1...2, offset: 2))
        // Batch 2: seq 3 then 5 (4 is missing), under a range that says 3…4.
        try store.append(batch([
            entry(3, .draw, grant: "g1", amount: -1, balance: 7, source: "u2"),
            entry(5, .draw, grant: "g1", amount: -1, balance: 6, source: "u3"),
        ], range: 3...4, offset: 4))
        // Batch 3: overdraws g1 (10 − 3 − 1 − 1 − 6 < 0); its range (what the store checks) disagrees with its entries.
        try store.append(batch([
            entry(6, .draw, grant: "g1", amount: -6, balance: 0, source: "u4"),
        ], range: 5...5, offset: 5))

        let verify = try drawdown(["ledger", "verify", "--data-dir", dir.url.path])
        #expect(verify.status == 1)
        let out = verify.stdoutText
        #expect(out.contains("batch 1, partition 2, seq 2: draw of c1/credits: balance 8 but 7 was expected"), "\(out)")
        #expect(out.contains("batch 2, partition 2, seq 5: seq 5 where 4 was expected (a gap)"), "\(out)")
        #expect(out.contains("batch 2, partition 2, seq 3: entries 3…5 but the batch's sequence range says 3…4"), "\(out)")
        #expect(out.contains("batch 3, partition 2, seq 6: entries 6…6 but the batch's sequence range says 5…5"), "\(out)")
        #expect(out.contains("batch 3, partition 2, seq 6: draw of c1/credits: grant g1 overdrawn"), "\(out)")
        #expect(out.contains("ledger verify FAILED: 5 problem(s)"), "\(out)")
    }

    // MARK: - Helpers

    func expectedLines(_ fixture: LedgerFixture, throughBatch last: UInt64) throws -> [String] {
        var out: [String] = []
        for batch in fixture.batches where batch.number <= last {
            for section in try BatchPayload.decode(batch.payload).sections {
                for entry in section.entries {
                    var line: [UInt8] = []
                    entry.appendJSON(to: &line, partition: section.partition)
                    out.append(String(decoding: line, as: UTF8.self))
                }
            }
        }
        return out
    }

    func fileSize(_ path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).int64Value
    }

    func flipByte(in path: String, at offset: Int64) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [byte ^ 0x40])
    }
}
