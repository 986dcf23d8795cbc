/// Remembered idempotency keys of one partition: an open-addressing hash table over key
/// fingerprints with one 32-byte slot per key, so a probe reads one cache line (no per-key
/// allocation; ≤ 64 bytes a key at 10M keys including the free slots).
///
/// A slot holds the fingerprint's low 64 bits and the low 32 bits of its high half (96
/// bits compared: among the ≤ 10^7 keys a table holds, a false match has probability
/// below 10^-21 per lookup), the customer index + 1 (0: empty), the message's timestamp
/// and its content hash. Slots are four `UInt64` words; the first slot starts at a 32-byte
/// boundary of the storage so that no slot straddles a cache line.
///
/// A key stays while its message's timestamp is within the dedupe window behind its
/// customer's watermark. Lookups check that themselves, so stale keys are harmless;
/// memory is reclaimed by `sweep`, run when the table fills, which drops stale keys
/// before it decides to grow.
public struct DedupeTable: Sendable {
    public static let initialCapacity = 1 << 10
    /// Fill level (of 1024) that triggers a sweep or growth.
    static let fillTriggerPer1024 = 820
    /// After a sweep, grow if still above this fill level (of 1024).
    static let growAbovePer1024 = 512
    static let wordsPerSlot = 4
    static let slotBytes = 32

    /// Slot `s` is `words[base + 4s ..< base + 4s + 4]`: low, high32 | (customer + 1) << 32,
    /// timestamp, content hash.
    private var words: [UInt64]
    /// Words skipped at the start so that slots are 32-byte aligned (alignment only helps
    /// speed: every access goes through `base`, whatever the buffer's address).
    private var base: Int
    private var mask: Int
    public private(set) var count = 0

    public init(capacity: Int = DedupeTable.initialCapacity) {
        var size = DedupeTable.initialCapacity
        while size < capacity { size <<= 1 }
        words = Array(repeating: 0, count: size * DedupeTable.wordsPerSlot + 3)
        let address = words.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        base = Int((UInt(DedupeTable.slotBytes) &- address % UInt(DedupeTable.slotBytes)) % UInt(DedupeTable.slotBytes)) / 8
        mask = size - 1
    }

    public var capacity: Int { mask + 1 }
    /// Bytes held by the table's storage.
    public var storageBytes: Int { words.count * 8 }

    public struct Remembered: Equatable, Sendable {
        public var timestamp: Int64
        public var contentHash: UInt64
    }

    @inline(__always)
    private static func tag(_ key: KeyFingerprint) -> UInt64 { key.high & 0xFFFF_FFFF }

    @inline(__always)
    private func offset(_ slot: Int) -> Int { base &+ slot &* DedupeTable.wordsPerSlot }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always)
    private func find(_ key: KeyFingerprint) -> (offset: Int, found: Bool) {
        let tag = DedupeTable.tag(key)
        var slot = Int(truncatingIfNeeded: key.low) & mask
        while true {
            let o = offset(slot)
            let second = words[o + 1]
            if second >> 32 == 0 { return (o, false) }
            if words[o] == key.low && second & 0xFFFF_FFFF == tag { return (o, true) }
            slot = (slot + 1) & mask
        }
    }

    /// Reads the slot a lookup of `key` starts at and returns its second word (for
    /// `PartitionEngine.warm`: loading it early makes the later lookup hit the cache).
    @inline(__always)
    func touch(_ key: KeyFingerprint) -> UInt64 {
        words[offset(Int(truncatingIfNeeded: key.low) & mask) + 1]
    }

    public func lookup(_ key: KeyFingerprint) -> Remembered? {
        let (o, found) = find(key)
        guard found else { return nil }
        return Remembered(timestamp: Int64(bitPattern: words[o + 2]), contentHash: words[o + 3])
    }

    /// Remembers a key (replacing a stale entry for the same key).
    /// `isStale` tells, for a customer index and a timestamp, whether a key may be forgotten;
    /// it is only called when the table must make room.
    public mutating func remember(
        _ key: KeyFingerprint, customer: Int, timestamp: Int64, contentHash: UInt64,
        isStale: (Int, Int64) -> Bool
    ) {
        if isFull { makeRoom(isStale: isStale) }
        insert(key, customer: customer, timestamp: timestamp, contentHash: contentHash)
    }

    /// Whether the next new key must wait for `makeRoom`.
    @inline(__always)
    var isFull: Bool { (count + 1) * 1024 > capacity * DedupeTable.fillTriggerPer1024 }

    /// `remember` without the fill check: for a caller that checked `isFull` itself (and so
    /// builds its `isStale` closure only when it is needed).
    @inline(__always)
    mutating func insert(_ key: KeyFingerprint, customer: Int, timestamp: Int64, contentHash: UInt64) {
        let (o, found) = find(key)
        if !found {
            words[o] = key.low
            words[o + 1] = DedupeTable.tag(key) | UInt64(UInt32(customer + 1)) << 32
            count += 1
        }
        words[o + 2] = UInt64(bitPattern: timestamp)
        words[o + 3] = contentHash
    }

    /// Drops stale keys; doubles the table if it is still more than half full.
    mutating func makeRoom(isStale: (Int, Int64) -> Bool) {
        // One pass decides every key, clearing the stale ones in place (this storage is
        // dropped below): the rebuild then asks `isStale` nothing again, which for an old key
        // reads its customer's record, a cache miss per key on a large partition.
        var live = 0
        let (base, mask) = (self.base, self.mask)
        words.withUnsafeMutableBufferPointer { words in
            for slot in 0...mask {
                let o = base &+ slot &* DedupeTable.wordsPerSlot
                let second = words[o + 1]
                guard second >> 32 != 0 else { continue }
                if isStale(Int(second >> 32) - 1, Int64(bitPattern: words[o + 2])) {
                    words[o + 1] = 0
                } else {
                    live += 1
                }
            }
        }
        let newCapacity = live * 1024 > capacity * DedupeTable.growAbovePer1024 ? capacity * 2 : capacity
        let old = self
        self = DedupeTable(capacity: newCapacity)
        // The live keys in the old slot order, as before: the same table, slot for slot. The
        // keys are distinct, so each goes to the first empty slot of its probe sequence.
        let (newBase, newMask) = (self.base, self.mask)
        old.words.withUnsafeBufferPointer { oldWords in
            words.withUnsafeMutableBufferPointer { words in
                for slot in 0...mask {
                    let from = base &+ slot &* DedupeTable.wordsPerSlot
                    let second = oldWords[from + 1]
                    guard second >> 32 != 0 else { continue }
                    var to = Int(truncatingIfNeeded: oldWords[from]) & newMask
                    while words[newBase &+ to &* DedupeTable.wordsPerSlot + 1] >> 32 != 0 { to = (to + 1) & newMask }
                    let o = newBase &+ to &* DedupeTable.wordsPerSlot
                    words[o] = oldWords[from]
                    words[o + 1] = second
                    words[o + 2] = oldWords[from + 2]
                    words[o + 3] = oldWords[from + 3]
                }
            }
        }
        count = live
    }

    /// Puts back a key read from a snapshot (no sweep: the table is sized for it).
    public mutating func restore(_ key: KeyFingerprint, customer: Int, remembered: Remembered) {
        remember(key, customer: customer, timestamp: remembered.timestamp, contentHash: remembered.contentHash) { _, _ in false }
    }

    /// Every remembered key, in slot order (for snapshots). The fingerprint's high half
    /// carries the 32 bits the table keeps.
    public func forEach(_ body: (KeyFingerprint, Int, Remembered) -> Void) {
        for slot in 0...mask {
            let o = offset(slot)
            let second = words[o + 1]
            guard second >> 32 != 0 else { continue }
            body(
                KeyFingerprint(low: words[o], high: second & 0xFFFF_FFFF), Int(second >> 32) - 1,
                Remembered(timestamp: Int64(bitPattern: words[o + 2]), contentHash: words[o + 3]))
        }
    }
}
