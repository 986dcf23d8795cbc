import Foundation
import Testing
@testable import DrawdownLedger

@Suite struct LedgerRecoveryTests {
    /// A ledger of `count` batches in one segment (default limits), and where each record starts.
    func makeLedger(_ dir: TempDirectory, count: Int, seed: UInt64, payloadBytesMax: Int = 120) throws -> (written: [(LedgerBatch, LedgerHash)], offsets: [Int]) {
        var gen = BatchGenerator(seed: seed)
        gen.payloadBytesMax = payloadBytesMax
        let store = try LedgerStore.open(dataDirectory: dir.path)
        var written: [(LedgerBatch, LedgerHash)] = []
        var offsets: [Int] = []
        for _ in 0..<count {
            offsets.append(dir.segmentFiles().first.map { dir.read(dir.ledger + "/" + $0).count } ?? 0)
            written += try appendBatches(store, &gen, count: 1)
        }
        return (written, offsets)
    }

    @Test func tornLastRecordIsCutAtEveryLength() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (written, offsets) = try makeLedger(dir, count: 4, seed: 21)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        let full = dir.read(segment)
        let lastStart = offsets.last!
        print("torn-write sweep over a last record of \(full.count - lastStart) bytes")
        for cut in lastStart..<full.count {
            dir.write(segment, Array(full[..<cut]))
            let store = try LedgerStore.open(dataDirectory: dir.path)
            let report = store.recoveryReport
            #expect(store.lastBatchNumber == 3, "cut at \(cut)")
            #expect(store.lastHash == written[2].1)
            if cut > lastStart {
                #expect(report.tornTail?.batchNumber == 4 && report.tornTail?.byteOffset == Int64(lastStart), "cut at \(cut): \(report)")
                #expect(report.bytesCut == Int64(cut - lastStart))
            } else {
                #expect(report.tornTail == nil)
            }
            #expect(dir.read(segment).count == lastStart, "the torn bytes are gone")
            // Appending continues the chain: the same batch 4 gets the same hash.
            #expect(try store.append(written[3].0) == written[3].1)
        }
        #expect(dir.read(segment) == full)
    }

    @Test func damageInsideTheLastRecordThatReachesTheEndIsATornTail() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (_, offsets) = try makeLedger(dir, count: 3, seed: 22)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        var bytes = dir.read(segment)
        bytes[bytes.count - 5] ^= 0x40  // a lost sector inside the last record
        dir.write(segment, bytes)
        #expect(LedgerStore.verify(dataDirectory: dir.path).first?.reason.contains("torn") == true)
        let store = try LedgerStore.open(dataDirectory: dir.path)
        #expect(store.lastBatchNumber == 2)
        #expect(store.recoveryReport.tornTail?.byteOffset == Int64(offsets[2]))
    }

    @Test func zeroFilledTailIsCut() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        _ = try makeLedger(dir, count: 3, seed: 23)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        let good = dir.read(segment)
        dir.write(segment, good + [UInt8](repeating: 0, count: 4_096))
        let store = try LedgerStore.open(dataDirectory: dir.path)
        #expect(store.lastBatchNumber == 3)
        #expect(store.recoveryReport.bytesCut == 4_096)
        #expect(dir.read(segment) == good)
    }

    @Test func flippedByteInAnEarlierBatchRefusesToOpen() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (_, offsets) = try makeLedger(dir, count: 5, seed: 24)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        let good = dir.read(segment)
        // Every byte position of batch 2's record: header or body, the damage is named.
        for position in offsets[1]..<offsets[2] {
            var bytes = good
            bytes[position] ^= 0x01
            dir.write(segment, bytes)
            guard let problem = expectCorrupt(note: "byte \(position)", { try LedgerStore.open(dataDirectory: dir.path) }) else { continue }
            #expect(problem.batchNumber == 2, "byte \(position): \(problem)")
            #expect(problem.file == segment && problem.byteOffset == Int64(offsets[1]), "byte \(position): \(problem)")
            let problems = LedgerStore.verify(dataDirectory: dir.path)
            #expect(problems.contains { $0.batchNumber == 2 }, "byte \(position): \(problems)")
            #expect(dir.read(segment) == bytes, "open changed nothing")
        }
    }

    @Test func verifyReadsOnPastDamage() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (_, offsets) = try makeLedger(dir, count: 6, seed: 25)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        var bytes = dir.read(segment)
        bytes[offsets[1] + 100] ^= 0x10  // body of batch 2
        bytes[offsets[4] + 100] ^= 0x10  // body of batch 5
        dir.write(segment, bytes)
        let problems = LedgerStore.verify(dataDirectory: dir.path)
        #expect(problems.map(\.batchNumber) == [2, 5], "\(problems)")
        #expect(problems.allSatisfy { $0.reason.contains("checksum") })
    }

    @Test func validRecordWithAWrongPreviousHashBreaksTheChain() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (written, offsets) = try makeLedger(dir, count: 5, seed: 26)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        let good = dir.read(segment)
        // Rewrite batch 3 as a perfectly valid record (checksum and hash agree) that follows the
        // wrong hash; keep its length so later records stay in place.
        var forged = written[2].0
        forged.previousHash = written[0].1
        let (record, _) = try LedgerRecord.encode(forged, zstd: Zstd(), limits: .default)
        #expect(record.count == offsets[3] - offsets[2])
        var bytes = good
        bytes.replaceSubrange(offsets[2]..<offsets[3], with: record)
        dir.write(segment, bytes)
        guard let problem = expectCorrupt(note: "open", { try LedgerStore.open(dataDirectory: dir.path) }) else { return }
        #expect(problem.batchNumber == 3 && problem.byteOffset == Int64(offsets[2]))
        #expect(problem.reason.contains("broken chain"), "\(problem)")
        let problems = LedgerStore.verify(dataDirectory: dir.path)
        #expect(problems.count == 2, "batch 3 follows the wrong hash, and batch 4 follows batch 3's new hash: \(problems)")
        #expect(problems.first?.batchNumber == 3)
    }

    @Test func damageInAnEarlierSegmentRefusesToOpen() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 27)
        do {
            let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
            _ = try appendBatches(store, &gen, count: 30)
        }
        let files = dir.segmentFiles()
        #expect(files.count >= 2)
        // Cut the first segment short: a torn record that is not at the end of the ledger.
        let first = dir.ledger + "/" + files[0]
        let bytes = dir.read(first)
        dir.write(first, Array(bytes.dropLast(10)))
        guard let problem = expectCorrupt(note: "open", { try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits) }) else { return }
        #expect(problem.file == first)
        #expect(!LedgerStore.verify(dataDirectory: dir.path, limits: smallLimits).isEmpty)
    }

    @Test func missingSegmentIsAGap() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 28)
        do {
            let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
            _ = try appendBatches(store, &gen, count: 30)
        }
        let files = dir.segmentFiles()
        #expect(files.count >= 3)
        try FileManager.default.removeItem(atPath: dir.ledger + "/" + files[1])
        guard let problem = expectCorrupt(note: "open", { try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits) }) else { return }
        #expect(problem.file.hasSuffix(files[2]), "\(problem)")
    }

    @Test func readerDetectsDamageAfterOpen() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let (_, offsets) = try makeLedger(dir, count: 4, seed: 29)
        let store = try LedgerStore.open(dataDirectory: dir.path)
        let segment = dir.ledger + "/" + dir.segmentFiles()[0]
        var bytes = dir.read(segment)
        bytes[offsets[2] + 50] ^= 0xFF
        dir.write(segment, bytes)
        let reader = store.batches(from: 1)
        #expect(try reader.next()?.number == 1)
        #expect(try reader.next()?.number == 2)
        #expect(throws: LedgerError.self) { try reader.next() }
    }
}
