@testable import DrawdownCore
import Testing

/// The engine's own tables (idempotency keys, customer and grant indexes) and the key hashes
/// the decoder computes from a record's bytes, against plain reference models.
@Suite struct EngineIndexTests {
    typealias Generator = SplitMix

    @Test func dedupeTableMatchesADictionaryThroughGrowthAndSweeps() {
        var generator = Generator(state: 7)
        var table = DedupeTable()
        var reference: [KeyFingerprint: (customer: Int, remembered: DedupeTable.Remembered)] = [:]
        var keys: [KeyFingerprint] = []
        // Customers 0..<50; a key of customer c is stale when its timestamp is below c * 1000.
        let staleBelow = 20_000
        for n in 0..<20_000 {
            let key: KeyFingerprint
            if n % 7 == 3, !keys.isEmpty {
                key = keys[Int(generator.next() % UInt64(keys.count))]  // replace
            } else {
                key = KeyFingerprint(low: generator.next(), high: generator.next() & 0xFFFF_FFFF)
                keys.append(key)
            }
            let customer = Int(generator.next() % 50)
            let remembered = DedupeTable.Remembered(timestamp: Int64(n), contentHash: generator.next())
            table.remember(key, customer: customer, timestamp: remembered.timestamp, contentHash: remembered.contentHash) {
                _, timestamp in timestamp < Int64(n - staleBelow)
            }
            reference[key] = (reference[key]?.customer ?? customer, remembered)  // a replacement keeps its customer
        }
        #expect(table.count == reference.count)
        for (key, value) in reference { #expect(table.lookup(key) == value.remembered) }
        #expect(table.lookup(KeyFingerprint(low: 1, high: 2)) == nil)
        var seen = 0
        table.forEach { key, customer, remembered in
            seen += 1
            #expect(reference[key]?.customer == customer)
            #expect(reference[key]?.remembered == remembered)
        }
        #expect(seen == reference.count)
        // Sweeps drop only stale keys: with everything stale below 19,000 the table shrinks.
        var swept = table
        var recent: [KeyFingerprint] = []
        for n in 20_000..<40_000 {
            let key = KeyFingerprint(low: generator.next(), high: generator.next() & 0xFFFF_FFFF)
            swept.remember(key, customer: 0, timestamp: Int64(n), contentHash: UInt64(n)) { _, timestamp in timestamp < Int64(n - 1_000) }
            if n >= 39_000 { recent.append(key) }
        }
        #expect(swept.count < 20_000 + reference.count)
        for (i, key) in recent.enumerated() {
            #expect(swept.lookup(key) == DedupeTable.Remembered(timestamp: Int64(39_000 + i), contentHash: UInt64(39_000 + i)))
        }
        // The original is a value: untouched.
        #expect(table.count == reference.count)
    }

    /// `makeRoom` asks about each key once and moves the live ones itself. Snapshots store the
    /// table slot by slot, so what it leaves must be, slot for slot, the table that putting
    /// the live keys back in slot order into a fresh one of the capacity chosen gives.
    @Test func dedupeSweepAsksOnceAndKeepsTheLayoutOfReinsertion() {
        var generator = Generator(state: 99)
        func slots(_ table: DedupeTable) -> [UInt64] {
            var words: [UInt64] = []
            table.forEach { key, customer, remembered in
                words += [key.low, key.high, UInt64(customer), UInt64(remembered.timestamp), remembered.contentHash]
            }
            return words
        }
        // Nothing stale (the table doubles), a third, two thirds, everything (it keeps its size).
        for staleBelow: Int64 in [0, 270, 540, 800] {
            var table = DedupeTable()
            for n in 0..<800 {
                let key = KeyFingerprint(low: generator.next(), high: generator.next() & 0xFFFF_FFFF)
                table.insert(key, customer: n % 13, timestamp: Int64(n), contentHash: generator.next())
            }
            var live: [(KeyFingerprint, Int, DedupeTable.Remembered)] = []
            table.forEach { key, customer, remembered in
                if remembered.timestamp >= staleBelow { live.append((key, customer, remembered)) }
            }
            let capacity = live.count * 1024 > table.capacity * 512 ? table.capacity * 2 : table.capacity
            var expected = DedupeTable(capacity: capacity)
            for (key, customer, remembered) in live { expected.restore(key, customer: customer, remembered: remembered) }

            var asked = 0
            table.makeRoom { _, timestamp in
                asked += 1
                return timestamp < staleBelow
            }
            #expect(asked == 800, "stale below \(staleBelow)")
            #expect(table.capacity == expected.capacity, "stale below \(staleBelow)")
            #expect(table.count == live.count, "stale below \(staleBelow)")
            let sameSlots = slots(table) == slots(expected)  // not in the expectation: it would print both tables
            #expect(sameSlots, "stale below \(staleBelow): the slots differ from reinsertion's")
            for (key, _, remembered) in live { #expect(table.lookup(key) == remembered) }
        }
    }

    /// The expiry heap against a sorted reference, and its array against the swap-based sift it
    /// replaced: snapshots store the array as it is, so its arrangement must not change either.
    @Test func expiryHeapPopsInOrderAndKeepsTheArrangementOfTheSwappingSift() {
        var generator = Generator(state: 31)
        var heap = MinHeap()
        var reference: [MinHeap.Item] = []  // the swap-based heap, transcribed
        var pending: [MinHeap.Item] = []  // what is in the heap, for the order check
        func referencePop() -> MinHeap.Item? {
            guard !reference.isEmpty else { return nil }
            let top = reference[0]
            let last = reference.removeLast()
            guard !reference.isEmpty else { return top }
            reference[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < reference.count, reference[left] < reference[smallest] { smallest = left }
                if right < reference.count, reference[right] < reference[smallest] { smallest = right }
                guard smallest != parent else { return top }
                reference.swapAt(parent, smallest)
                parent = smallest
            }
        }
        for n in 0..<8_000 {
            if generator.next() % 3 == 0 {
                let popped = heap.pop()
                let expected = referencePop()
                #expect(popped?.expiresAt == expected?.expiresAt && popped?.grant == expected?.grant)
                if let smallest = pending.indices.min(by: { pending[$0] < pending[$1] }) {
                    #expect(popped?.expiresAt == pending[smallest].expiresAt && popped?.grant == pending[smallest].grant)
                    pending.remove(at: smallest)
                } else {
                    #expect(popped == nil)
                }
            } else {
                // Few distinct times, so that ties fall to the grant number.
                let item = MinHeap.Item(expiresAt: Int64(generator.next() % 200), grant: Int32(n))
                heap.push(item)
                reference.append(item)
                var child = reference.count - 1
                while child > 0, reference[child] < reference[(child - 1) / 2] {
                    reference.swapAt(child, (child - 1) / 2)
                    child = (child - 1) / 2
                }
                pending.append(item)
            }
            if n % 1_000 == 0 {
                #expect(heap.items.map(\.grant) == reference.map(\.grant))
            }
        }
        #expect(heap.items.map(\.grant) == reference.map(\.grant))
    }

    @Test func ledgerEntryGrantIsOptionalOnTheOutside() {
        var entry = LedgerEntry(
            seq: 1, type: .overage, customer: "c", currency: "usd", grant: nil, amount: Credits(nanos: 5), source: "e",
            timestamp: EventTime(nanos: 0), balance: .zero)
        #expect(entry.grant == nil)
        entry.grant = "g1"
        #expect(entry.grant == "g1")
        var other = entry
        other.grant = nil
        #expect(other.grant == nil && other != entry)
        other.grant = "g1"
        #expect(other == entry)
    }

    @Test func dedupeTableComparesTheLow32BitsOfTheHighHalf() {
        var table = DedupeTable()
        let key = KeyFingerprint(low: 42, high: 0xDEAD_BEEF_0000_0001)
        table.remember(key, customer: 3, timestamp: 9, contentHash: 5) { _, _ in false }
        #expect(table.lookup(KeyFingerprint(low: 42, high: 1)) == DedupeTable.Remembered(timestamp: 9, contentHash: 5))
        #expect(table.lookup(KeyFingerprint(low: 42, high: 2)) == nil)
        #expect(table.lookup(KeyFingerprint(low: 43, high: 1)) == nil)
    }

    @Test func hashIndexFindsEveryNumberAndConfirmsThroughTheCaller() {
        var index = HashIndex()
        var generator = Generator(state: 11)
        // Few distinct hashes, so that candidates collide and the caller's check decides.
        let hashes = (0..<5_000).map { _ in generator.next() % 64 }
        for (number, hash) in hashes.enumerated() { index.insert(hash, Int32(number)) }
        #expect(index.count == hashes.count)
        for (number, hash) in hashes.enumerated() {
            #expect(index.find(hash) { $0 == Int32(number) } == Int32(number))
        }
        #expect(index.find(1_000) { _ in true } == nil)
    }

    /// `candidate` (what `warm` loads) is the first number in the probe sequence whose tag
    /// matches: the number itself for a hash stored once, one stored under the same tag
    /// otherwise, and nil for a hash whose probe meets an empty slot first.
    @Test func hashIndexCandidateIsTheFirstNumberWithTheSameTag() throws {
        var index = HashIndex()
        var generator = Generator(state: 23)
        let unique = (0..<3_000).map { _ in generator.next() }
        for (number, hash) in unique.enumerated() { index.insert(hash, Int32(number)) }
        // Colliding hashes: 40 numbers under each of 8 small values.
        for n in 0..<320 { index.insert(UInt64(n % 8), Int32(unique.count + n)) }
        let fold = { (hash: UInt64) in (hash ^ hash >> 32) & 0xFFFF_FFFF }
        for (number, hash) in unique.enumerated() {
            let sharesItsTag = unique.indices.contains { $0 != number && fold(unique[$0]) == fold(hash) }
            guard let candidate = index.candidate(hash) else {
                Issue.record("no candidate for a stored hash")
                continue
            }
            if sharesItsTag {
                #expect(fold(unique[Int(candidate)]) == fold(hash))
            } else {
                #expect(candidate == Int32(number))
            }
        }
        for value in 0..<8 {
            let candidate = try #require(index.candidate(UInt64(value)))
            #expect(Int(candidate) >= unique.count && (Int(candidate) - unique.count) % 8 == value)
        }
        // A tag nothing has: its probe ends on an empty slot (the index is at most half full).
        var absent = generator.next()
        while unique.contains(where: { fold($0) == fold(absent) }) || fold(absent) < 8 { absent = generator.next() }
        #expect(index.candidate(absent) == nil)
    }

    @Test(arguments: [
        #"{"id":"e1","customer":"cus_1","timestamp":"2026-11-01T00:00:00Z","cost":"1"}"#,
        #"{"id":"a-much-longer-idempotency-key-0001","customer":"customer-with-a-long-name","timestamp":"2026-11-01T00:00:00Z","cost":"1"}"#,
        #"{"id":"e\u00e9\"1","customer":"cus\\_1","timestamp":"2026-11-01T00:00:00Z","cost":"1"}"#,
    ])
    func decodedKeyHashesEqualTheOnesOfTheStrings(record: String) throws {
        var decoder = MessageDecoder(priceBook: nil)
        let message = try decoder.decode(record).get()
        let fromBytes = try #require(message.keyHashes)
        let fromStrings = KeyHashes(customer: message.customer, id: message.id)
        #expect(fromBytes.customer == fromStrings.customer)
        #expect(fromBytes.fingerprint == fromStrings.fingerprint)
        #expect(fromBytes.fingerprint == KeyFingerprint(customer: message.customer, id: message.id))
    }

    @Test func changingIdOrCustomerForgetsTheDecodedHashes() throws {
        var decoder = MessageDecoder(priceBook: nil)
        var message = try decoder.decode(#"{"id":"e1","customer":"cus_1","timestamp":"2026-11-01T00:00:00Z","cost":"1"}"#).get()
        var engine = PartitionEngine()
        #expect(engine.apply(message) == .applied)
        message.id = "e2"
        #expect(message.keyHashes == nil)
        #expect(engine.apply(message) == .applied)  // a new key, not a duplicate of e1
        message.customer = "cus_2"
        #expect(engine.apply(message) == .applied)
        #expect(engine.balances(customer: "cus_2").first?.overage == Credits(nanos: 1_000_000_000))
    }
}
