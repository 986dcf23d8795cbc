import Testing
@testable import DrawdownLedger

@Suite struct SnapshotStoreTests {
    func state(_ n: Int) -> [UInt8] { (0..<(1_000 + n * 37)).map { UInt8(truncatingIfNeeded: $0 * n + 1) } }

    @Test func writeThenReadNewest() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let snapshots = try SnapshotStore(dataDirectory: dir.path, limits: smallLimits)
        #expect(try snapshots.newestValid().snapshot == nil)
        let hash = LedgerHash(bytes: [UInt8](repeating: 7, count: 32))
        try snapshots.write(state(1), coversThroughBatch: 10, chainHash: hash)
        try snapshots.write([], coversThroughBatch: 11, chainHash: hash)
        let load = try snapshots.newestValid()
        #expect(load.snapshot?.coversThroughBatch == 11 && load.snapshot?.state == [] && load.skipped.isEmpty)
        #expect(try snapshots.newestValid(notAfter: 10).snapshot?.state == state(1))
    }

    @Test func corruptedNewestFallsBackToThePrevious() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let snapshots = try SnapshotStore(dataDirectory: dir.path, limits: smallLimits)
        let hash = LedgerHash(bytes: [UInt8](repeating: 1, count: 32))
        try snapshots.write(state(1), coversThroughBatch: 5, chainHash: hash)
        let newest = try snapshots.write(state(2), coversThroughBatch: 9, chainHash: hash)
        var bytes = dir.read(newest)
        bytes[bytes.count / 2] ^= 0x20
        dir.write(newest, bytes)
        let load = try snapshots.newestValid()
        #expect(load.snapshot?.coversThroughBatch == 5)
        #expect(load.snapshot?.state == state(1))
        #expect(load.skipped.count == 1 && load.skipped[0].batchNumber == nil && load.skipped[0].file == newest)
        #expect(load.skipped[0].reason.contains("checksum"))
        // A truncated one is skipped too.
        dir.write(newest, Array(bytes.prefix(40)))
        #expect(try snapshots.newestValid().snapshot?.coversThroughBatch == 5)
    }

    @Test func keepsTheNewestK() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let snapshots = try SnapshotStore(dataDirectory: dir.path, limits: smallLimits)
        for batch in UInt64(1)...6 {
            try snapshots.write(state(Int(batch)), coversThroughBatch: batch * 10, chainHash: .zero)
        }
        #expect(try snapshots.batchesCovered() == [50, 60])
    }

    @Test func leftoverTempFilesAreRemoved() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        _ = try SnapshotStore(dataDirectory: dir.path)
        let temp = dir.path + "/snapshots/00000000000000000003.snap.tmp"
        dir.write(temp, [1, 2, 3])
        let snapshots = try SnapshotStore(dataDirectory: dir.path)
        #expect(dir.read(temp).isEmpty)
        #expect(try snapshots.batchesCovered().isEmpty)
    }

    @Test func matchingTheLedgerSkipsForeignAndFutureSnapshots() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 31)
        let ledger = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        let written = try appendBatches(ledger, &gen, count: 12)
        let snapshots = try SnapshotStore(dataDirectory: dir.path, limits: LedgerLimits(snapshotsRetainedMax: 5))
        try snapshots.write(state(1), coversThroughBatch: 4, chainHash: written[3].1)
        try snapshots.write(state(2), coversThroughBatch: 8, chainHash: written[0].1)  // another history
        try snapshots.write(state(3), coversThroughBatch: 20, chainHash: .zero)  // ahead of the ledger
        let load = try snapshots.newestValid(matching: ledger)
        #expect(load.snapshot?.coversThroughBatch == 4)
        #expect(load.skipped.map(\.batchNumber) == [20, 8])
    }

    @Test func failedRenameLeavesThePreviousSnapshot() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let io = FaultInjectingStorageIO()
        let snapshots = try SnapshotStore(dataDirectory: dir.path, io: io)
        try snapshots.write(state(1), coversThroughBatch: 3, chainHash: .zero)
        io.arm(.init(.rename))
        #expect(throws: LedgerError.self) { try snapshots.write(state(2), coversThroughBatch: 4, chainHash: .zero) }
        let reopened = try SnapshotStore(dataDirectory: dir.path)
        #expect(try reopened.newestValid().snapshot?.coversThroughBatch == 3)
        #expect(try reopened.batchesCovered() == [3])
    }
}
