/// Fast, stable (process-independent) hashing for fingerprints, content comparison and
/// shard routing. Never `Hasher`, which is seeded per process.
///
/// The mixing core is a 64×64→128 multiply folded to 64 bits (as in wyhash), reading
/// 8 bytes at a time.
public enum StableHash {
    @usableFromInline static let p0: UInt64 = 0xa076_1d64_78bd_642f
    @usableFromInline static let p1: UInt64 = 0xe703_7ed1_a0b4_28db
    @usableFromInline static let p2: UInt64 = 0x8ebc_6af0_9c88_c6e3
    @usableFromInline static let p3: UInt64 = 0x5899_65cc_7537_4cc3

    @inlinable @inline(__always)
    public static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// Hash of a byte range with a seed.
    @inlinable
    public static func hash(_ base: UnsafeRawPointer?, _ count: Int, seed: UInt64 = 0) -> UInt64 {
        var h = seed ^ p0 ^ UInt64(truncatingIfNeeded: count) &* p3
        guard let base, count > 0 else { return mix(h ^ p1, p2) }
        var offset = 0
        while offset + 16 <= count {
            let a = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let b = base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            h = mix(a ^ p1, b ^ h)
            offset += 16
        }
        var a: UInt64 = 0
        var b: UInt64 = 0
        let rest = count - offset
        if rest >= 8 {
            a = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            b = base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        } else if rest >= 4 {
            // The rest's bytes, little-endian, zero-extended (what a byte loop gives) from two
            // overlapping 4-byte loads: the overlap holds the same bytes at the same places.
            let low = UInt64(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let high = UInt64(base.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
            a = low | high << (8 * UInt64(rest - 4))
        } else if rest > 0 {
            // The same for 1–3 bytes: first, middle and last (repeats OR in place).
            let middle = rest >> 1
            a = UInt64(base.load(fromByteOffset: offset, as: UInt8.self))
                | UInt64(base.load(fromByteOffset: offset + middle, as: UInt8.self)) << (8 * UInt64(middle))
                | UInt64(base.load(fromByteOffset: count - 1, as: UInt8.self)) << (8 * UInt64(rest - 1))
        }
        return mix(mix(a ^ p1, b ^ h) ^ UInt64(truncatingIfNeeded: count), p2 ^ seed)
    }

    @inlinable
    public static func hash(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt64 = 0) -> UInt64 {
        hash(UnsafeRawPointer(bytes.baseAddress), bytes.count, seed: seed)
    }

    public static func hash(_ string: String, seed: UInt64 = 0) -> UInt64 {
        var copy = string
        return copy.withUTF8 { hash($0, seed: seed) }
    }

    /// Combines an ordered sequence of hashes.
    @inlinable @inline(__always)
    public static func combine(_ h: UInt64, _ value: UInt64) -> UInt64 { mix(h ^ p0, value ^ p1) }
}

/// A 128-bit fingerprint of a (customer, id) idempotency key: two independent 64-bit
/// hashes. Collisions among 10^9 keys have probability below 10^-20.
public struct KeyFingerprint: Hashable, Sendable {
    public var low: UInt64
    public var high: UInt64

    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    public init(customer: String, id: String) {
        self.init(customerHash: StableHash.hash(customer, seed: 0x1234_5678), customer: customer, id: id)
    }

    /// `customerHash` is the customer's hash with seed 0x12345678 (already computed by the caller).
    init(customerHash c0: UInt64, customer: String, id: String) {
        let c1 = StableHash.hash(customer, seed: 0x9abc_def0)
        low = StableHash.hash(id, seed: c0)
        high = StableHash.hash(id, seed: c1 ^ 0x5555_5555_5555_5555)
    }
}

/// A message's customer hash (`CustomerKey.seed`) and idempotency fingerprint, computed once.
struct KeyHashes: Sendable {
    var customer: UInt64
    var fingerprint: KeyFingerprint

    init(customer: String, id: String) {
        self.customer = StableHash.hash(customer, seed: CustomerKey.seed)
        fingerprint = KeyFingerprint(customerHash: self.customer, customer: customer, id: id)
    }

    /// The same, from the decoded bytes of customer and id (equal to the `String` form).
    init(customer: UnsafeBufferPointer<UInt8>, id: UnsafeBufferPointer<UInt8>) {
        let c0 = StableHash.hash(customer, seed: CustomerKey.seed)
        let c1 = StableHash.hash(customer, seed: 0x9abc_def0)
        self.customer = c0
        fingerprint = KeyFingerprint(
            low: StableHash.hash(id, seed: c0), high: StableHash.hash(id, seed: c1 ^ 0x5555_5555_5555_5555))
    }
}
