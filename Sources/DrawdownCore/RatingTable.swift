/// A price book laid out for the decoder's hot path: a meter (and a `by` choice) is found
/// from the bytes of its name, without building a `String` or hashing with `Hasher`.
///
/// Only ASCII names are laid out this way. `String` equality is Unicode canonical
/// equivalence, under which ASCII names are equal exactly when their bytes are, but a
/// non-ASCII name can equal an ASCII one (U+212A KELVIN SIGN is `K`). So a name with a
/// byte ≥ 0x80, or a book (or a meter's choices) with any non-ASCII name, is left to the
/// `PriceBook`'s dictionaries: `lookup` answers `.dictionary` and the caller asks them.
struct RatingTable: Sendable {
    struct Meter: Sendable {
        var name: String
        var price: PriceBook.MeterPrice
        /// The bytes of `price.by`, when there is one.
        var by: [UInt8]?
        /// `price.prices` by the bytes of the choice; nil when a choice is not ASCII.
        var choices: ByteKeyTable?
        var choicePrices: [Credits]
    }

    enum Lookup {
        case found(Int)
        case absent
        case dictionary
    }

    private(set) var meters: [Meter] = []
    /// nil: the book has a non-ASCII meter name (or there is no book).
    private var names: ByteKeyTable?

    init(_ book: PriceBook?) {
        guard let book else { return }
        let sorted = book.meters.sorted { $0.key < $1.key }
        guard let names = ByteKeyTable(sorted.map { Array($0.key.utf8) }) else { return }
        self.names = names
        meters = sorted.map { name, price in
            let choices = price.prices.sorted { $0.key < $1.key }
            return Meter(
                name: name, price: price, by: price.by.map { Array($0.utf8) },
                choices: ByteKeyTable(choices.map { Array($0.key.utf8) }), choicePrices: choices.map(\.value))
        }
    }

    /// The meter named by `bytes`.
    func meter(_ bytes: UnsafeBufferPointer<UInt8>) -> Lookup {
        names?.lookup(bytes) ?? .dictionary
    }
}

/// An open-addressing table of distinct ASCII byte strings (keys of a price book): a key's
/// index in the array it was built from, found by `StableHash` and a byte comparison.
final class ByteKeyTable: Sendable {
    /// Every key's bytes, one after another; key `i` is `bytes[starts[i]..<starts[i + 1]]`.
    private let bytes: [UInt8]
    private let starts: [Int]
    private let hashes: [UInt64]
    /// Key index + 1 per slot, 0 when empty; a power of two of at least twice the keys.
    private let slots: [Int32]
    private let mask: Int

    static let seed: UInt64 = 0x7072_6963_6573

    /// nil when a key is not ASCII.
    init?(_ keys: [[UInt8]]) {
        guard keys.allSatisfy({ $0.allSatisfy { $0 < 0x80 } }) else { return nil }
        var size = 8
        while size < keys.count * 2 { size *= 2 }
        var slots = Array(repeating: Int32(0), count: size)
        let hashes = keys.map { key in key.withUnsafeBufferPointer { StableHash.hash($0, seed: ByteKeyTable.seed) } }
        for (index, hash) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & (size - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = Int32(index + 1)
        }
        self.bytes = keys.flatMap { $0 }
        self.starts = keys.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        self.hashes = hashes
        self.slots = slots
        self.mask = size - 1
    }

    /// The index of the key equal to `bytes`; `.dictionary` when `bytes` is not ASCII.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> RatingTable.Lookup {
        let hash = StableHash.hash(bytes, seed: ByteKeyTable.seed)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { break }
            if hashes[entry - 1] == hash, isKey(entry - 1, bytes) { return .found(entry - 1) }
            slot = (slot + 1) & mask
        }
        // Not here; a non-ASCII name may still equal a key as a `String`.
        return bytes.contains { $0 >= 0x80 } ? .dictionary : .absent
    }

    private func isKey(_ index: Int, _ other: UnsafeBufferPointer<UInt8>) -> Bool {
        self.bytes.withUnsafeBufferPointer { equal(UnsafeBufferPointer(rebasing: $0[starts[index]..<starts[index + 1]]), other) }
    }
}
