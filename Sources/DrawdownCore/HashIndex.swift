/// An open-addressing index from a 64-bit key hash to a dense `Int32` number (a customer's
/// or a grant's), in one `UInt64` a slot: 32 bits of the hash, and the number + 1 (0 marks
/// an empty slot). It keeps no keys: the caller confirms a candidate against its own
/// record, so a lookup costs one hash, usually one cache line of this table and the record
/// the caller reads anyway — against `Dictionary`'s per-process SipHash and its separate
/// key, value and metadata arrays. Public (lookups inlinable) for the benchmarks' floor of
/// apply, which indexes its customers and grants with it as the engine does.
public struct HashIndex: Sendable {
    @usableFromInline var slots: [UInt64]
    @usableFromInline var mask: Int
    public private(set) var count = 0

    public init(capacity: Int = 1 << 10) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: 0, count: size)
        mask = size - 1
    }

    @inlinable @inline(__always)
    static func fold(_ hash: UInt64) -> UInt64 { (hash ^ hash >> 32) & 0xFFFF_FFFF }

    /// The number whose record `matches` confirms, among those stored under `hash`.
    @inlinable @inline(__always)
    public func find(_ hash: UInt64, _ matches: (Int32) -> Bool) -> Int32? {
        let tag = HashIndex.fold(hash)
        var slot = Int(truncatingIfNeeded: tag) & mask
        while true {
            let word = slots[slot]
            if word == 0 { return nil }
            if word >> 32 == tag {
                let number = Int32(truncatingIfNeeded: word & 0xFFFF_FFFF) - 1
                if matches(number) { return number }
            }
            slot = (slot + 1) & mask
        }
    }

    /// The first number stored under `hash`'s 32-bit tag, not confirmed against its record
    /// (for `PartitionEngine.warm`: a wrong candidate only costs a useless load).
    @inline(__always)
    func candidate(_ hash: UInt64) -> Int32? {
        let tag = HashIndex.fold(hash)
        var slot = Int(truncatingIfNeeded: tag) & mask
        while true {
            let word = slots[slot]
            if word == 0 { return nil }
            if word >> 32 == tag { return Int32(truncatingIfNeeded: word & 0xFFFF_FFFF) - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Reads the slot a lookup of `hash` starts at and returns it (for `PartitionEngine.warm`:
    /// loading it early makes the later `find` hit the cache).
    @inlinable @inline(__always)
    public func touch(_ hash: UInt64) -> UInt64 {
        slots[Int(truncatingIfNeeded: HashIndex.fold(hash)) & mask]
    }

    /// Adds a number the index does not hold yet.
    public mutating func insert(_ hash: UInt64, _ number: Int32) {
        if (count + 1) * 2 > slots.count { grow() }
        place(HashIndex.fold(hash) << 32 | UInt64(UInt32(number) + 1))
        count += 1
    }

    private mutating func place(_ word: UInt64) {
        var slot = Int(truncatingIfNeeded: word >> 32) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = word
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        for word in old where word != 0 { place(word) }
    }
}
