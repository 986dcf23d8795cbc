/// Remembered idempotency keys of one partition: an open-addressing hash table over
/// 128-bit key fingerprints, stored as parallel arrays (36 bytes a slot, no per-key
/// allocation, ≤ 64 bytes a key at 10M keys including the free slots).
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

    private var fingerprintLow: [UInt64]
    private var fingerprintHigh: [UInt64]
    private var timestamps: [Int64]
    private var contentHashes: [UInt64]
    /// Customer index + 1; 0 marks an empty slot.
    private var customers: [UInt32]
    private var mask: Int
    public private(set) var count = 0

    public init(capacity: Int = DedupeTable.initialCapacity) {
        var size = DedupeTable.initialCapacity
        while size < capacity { size <<= 1 }
        fingerprintLow = Array(repeating: 0, count: size)
        fingerprintHigh = Array(repeating: 0, count: size)
        timestamps = Array(repeating: 0, count: size)
        contentHashes = Array(repeating: 0, count: size)
        customers = Array(repeating: 0, count: size)
        mask = size - 1
    }

    public var capacity: Int { mask + 1 }
    /// Bytes held by the table's storage.
    public var storageBytes: Int { capacity * (8 + 8 + 8 + 8 + 4) }

    public struct Remembered: Equatable, Sendable {
        public var timestamp: Int64
        public var contentHash: UInt64
    }

    public func lookup(_ key: KeyFingerprint) -> Remembered? {
        var slot = Int(truncatingIfNeeded: key.low) & mask
        while customers[slot] != 0 {
            if fingerprintLow[slot] == key.low && fingerprintHigh[slot] == key.high {
                return Remembered(timestamp: timestamps[slot], contentHash: contentHashes[slot])
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Remembers a key (replacing a stale entry for the same key).
    /// `isStale` tells, for a customer index and a timestamp, whether a key may be forgotten;
    /// it is only called when the table must make room.
    public mutating func remember(
        _ key: KeyFingerprint, customer: Int, timestamp: Int64, contentHash: UInt64,
        isStale: (Int, Int64) -> Bool
    ) {
        if (count + 1) * 1024 > capacity * DedupeTable.fillTriggerPer1024 {
            makeRoom(isStale: isStale)
        }
        var slot = Int(truncatingIfNeeded: key.low) & mask
        while customers[slot] != 0 {
            if fingerprintLow[slot] == key.low && fingerprintHigh[slot] == key.high {
                timestamps[slot] = timestamp
                contentHashes[slot] = contentHash
                return
            }
            slot = (slot + 1) & mask
        }
        fingerprintLow[slot] = key.low
        fingerprintHigh[slot] = key.high
        timestamps[slot] = timestamp
        contentHashes[slot] = contentHash
        customers[slot] = UInt32(customer + 1)
        count += 1
    }

    /// Drops stale keys; doubles the table if it is still more than half full.
    private mutating func makeRoom(isStale: (Int, Int64) -> Bool) {
        var live = 0
        for slot in 0...mask where customers[slot] != 0 {
            if !isStale(Int(customers[slot]) - 1, timestamps[slot]) { live += 1 }
        }
        let newCapacity = live * 1024 > capacity * DedupeTable.growAbovePer1024 ? capacity * 2 : capacity
        rebuild(capacity: newCapacity) { customer, timestamp in !isStale(customer, timestamp) }
    }

    private mutating func rebuild(capacity newCapacity: Int, keep: (Int, Int64) -> Bool) {
        let old = self
        self = DedupeTable(capacity: newCapacity)
        for slot in 0...old.mask where old.customers[slot] != 0 {
            let customer = Int(old.customers[slot]) - 1
            guard keep(customer, old.timestamps[slot]) else { continue }
            var target = Int(truncatingIfNeeded: old.fingerprintLow[slot]) & mask
            while customers[target] != 0 { target = (target + 1) & mask }
            fingerprintLow[target] = old.fingerprintLow[slot]
            fingerprintHigh[target] = old.fingerprintHigh[slot]
            timestamps[target] = old.timestamps[slot]
            contentHashes[target] = old.contentHashes[slot]
            customers[target] = old.customers[slot]
            count += 1
        }
    }

    /// Puts back a key read from a snapshot (no sweep: the table is sized for it).
    public mutating func restore(_ key: KeyFingerprint, customer: Int, remembered: Remembered) {
        remember(key, customer: customer, timestamp: remembered.timestamp, contentHash: remembered.contentHash) { _, _ in false }
    }

    /// Every remembered key, in slot order (for snapshots).
    public func forEach(_ body: (KeyFingerprint, Int, Remembered) -> Void) {
        for slot in 0...mask where customers[slot] != 0 {
            body(
                KeyFingerprint(low: fingerprintLow[slot], high: fingerprintHigh[slot]), Int(customers[slot]) - 1,
                Remembered(timestamp: timestamps[slot], contentHash: contentHashes[slot]))
        }
    }
}
