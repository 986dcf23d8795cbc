import DrawdownCore
import DrawdownHTTP
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

/// `CustomerLedgerIndex` pages over a ledger written batch by batch: following `next_cursor`
/// with any page size gives exactly the customer's entries in ledger order, whether the
/// decoded-entries cache holds everything, a little, or nothing, and as the ledger grows.
@Suite struct CustomerLedgerIndexTests {
    @Test(arguments: [0, 7, 1_000_000])
    func pagesFollowingTheCursorGiveEveryEntryInLedgerOrder(cacheEntriesMax: Int) throws {
        let dir = try OpsTemporaryDirectory("ledger-index")
        defer { dir.remove() }
        let store = try LedgerStore.open(dataDirectory: dir.url.path, limits: LedgerLimits(segmentBytesMax: 4_096))
        var random = SeededGenerator(seed: UInt64(cacheEntriesMax) &+ 3)
        var seq: [Int32: UInt64] = [:]
        var expected: [String: [(UInt64, Int32, UInt64)]] = [:]  // customer → (batch, partition, seq)
        var previous = LedgerHash.zero
        func appendBatch(_ number: UInt64) throws {
            var sections: [PartitionSection] = []
            for partition in Int32(0)..<3 where random.next() % 3 != 0 {
                var section = PartitionSection(partition: partition)
                for _ in 0..<Int(random.next() % 6) {
                    let customer = "c\(random.next() % 4)-p\(partition)"
                    let s = (seq[partition] ?? 0) + 1
                    seq[partition] = s
                    section.entries.append(LedgerEntry(
                        seq: s, type: .draw, customer: customer, currency: "credits", grant: "g", amount: Credits(units: -1),
                        source: "e\(number)-\(s)", timestamp: EventTime(nanos: Int64(number) * 1_000_000_000), balance: .zero))
                    expected[customer, default: []].append((number, partition, s))
                }
                if !section.entries.isEmpty { sections.append(section) }
            }
            let batch = LedgerBatch(number: number, previousHash: previous, payload: BatchPayload(sections: sections).encode())
            previous = try store.append(batch)
        }
        func check(through: UInt64, index: CustomerLedgerIndex) throws {
            for (customer, want) in expected {
                let limit = Int(random.next() % 4) + 1
                var got: [(UInt64, Int32, UInt64)] = []
                var cursor: CustomerLedgerIndex.Cursor?
                while true {
                    let page = try index.page(customer: customer, after: cursor, limit: limit, through: through)
                    #expect(page.entries.count <= limit)
                    got += page.entries.map { ($0.batch, $0.partition, $0.entry.seq) }
                    #expect(page.entries.allSatisfy { $0.entry.customer == customer })
                    cursor = page.nextCursor
                    if !page.hasMore { break }
                }
                let wanted = want.filter { $0.0 <= through }
                #expect(got.map { "\($0)" } == wanted.map { "\($0)" }, "\(customer), pages of \(limit)")
            }
        }
        for n in 1...12 { try appendBatch(UInt64(n)) }
        let index = CustomerLedgerIndex(dataDirectory: dir.url.path, io: POSIXStorageIO(), cacheEntriesMax: cacheEntriesMax)
        try check(through: 8, index: index)  // batches 9… are not durable yet as far as it knows
        for n in 13...30 { try appendBatch(UInt64(n)) }
        try check(through: 30, index: index)
        #expect(CustomerLedgerIndex.Cursor("12.3.17") == CustomerLedgerIndex.Cursor(batch: 12, partition: 3, seq: 17))
        #expect(CustomerLedgerIndex.Cursor("12.-3.17") == nil)
        #expect(CustomerLedgerIndex.Cursor("x") == nil)
    }
}
