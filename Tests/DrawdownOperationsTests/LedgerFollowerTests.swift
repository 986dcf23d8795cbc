import DrawdownLedger
import DrawdownTestSupport
import Foundation
import Testing

/// `LedgerFollower` (what the ledger pages of the HTTP API read through) against a live
/// `LedgerStore`: every batch once, in order, across segment rolls; a record being written is
/// "not yet", never an error; each location reads its batch back.
@Suite struct LedgerFollowerTests {
    @Test func followsAppendsAcrossSegmentsAndWaitsOutAPartialRecord() throws {
        let dir = try OpsTemporaryDirectory("follower")
        defer { dir.remove() }
        let limits = LedgerLimits(segmentBytesMax: 8_192)
        let store = try LedgerStore.open(dataDirectory: dir.url.path, limits: limits)
        let follower = LedgerFollower(dataDirectory: dir.url.path, limits: limits)
        #expect(try follower.next(through: .max) == nil)

        var random = SeededGenerator(seed: 7)
        var written: [LedgerBatch] = []
        var previous = LedgerHash.zero
        func append(_ count: Int) throws {
            for _ in 0..<count {
                let size = Int(random.next() % 3_000) + 1
                let payload = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next() % 7) }
                let batch = LedgerBatch(number: UInt64(written.count + 1), previousHash: previous, kind: .marker, payload: payload)
                previous = try store.append(batch)
                written.append(batch)
            }
        }
        var read: [(LedgerBatch, LedgerFollower.Location)] = []
        func drain(through: UInt64 = .max) throws {
            while let next = try follower.next(through: through) { read.append(next) }
        }

        try append(10)
        try drain(through: 4)  // stops at `through`
        #expect(read.map(\.0.number) == [1, 2, 3, 4])
        try drain()
        try append(25)  // several segment rolls
        try drain()
        #expect(read.map(\.0) == written)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path("ledger")).filter { $0.hasSuffix(".seg") }.count > 3)
        for (batch, location) in read { #expect(try follower.read(at: location) == batch) }

        // A record still being written (its first bytes only) is not there yet…
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path("ledger")).filter { $0.hasSuffix(".seg") }.sorted()
        let last = dir.path("ledger/" + segments.last!)
        let partial = try Data(contentsOf: URL(fileURLWithPath: last)).prefix(40)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: last))
        try handle.seekToEnd()
        try handle.write(contentsOf: partial)
        try handle.close()
        #expect(try follower.next(through: .max) == nil)
        #expect(follower.lastNumber == UInt64(written.count))
    }
}

extension Optional where Wrapped == (batch: LedgerBatch, location: LedgerFollower.Location) {
    static func == (a: Self, b: Self) -> Bool { a?.batch == b?.batch && a?.location == b?.location }
}
