/// The decoder's fast path: one pass over a record of the shape nearly every producer
/// writes, giving the same content hash and field spans as `JSONScanner.scanRecord`.
///
/// It accepts a strict subset of JSON: a top-level object whose strings (keys and values)
/// hold no escapes and no control characters, whose values are strings, numbers, literals,
/// flat objects of scalars (`properties`) or flat arrays of scalars (`meters`, `levels`).
/// Anything else — whitespace aside — makes it give up (`nil`), and the caller runs the
/// general path, which decides what the record is. It never rejects: every record it
/// accepts is one the general path accepts with the same hash and spans (the differential
/// tests check this). Bytes ≥ 0x80 may only sit inside strings, and a record that has any
/// is checked to be valid UTF-8 before it is accepted; an ASCII record needs no check.
///
/// It also gives up when it cannot cheaply prove the names of an object distinct: a known
/// top-level field seen twice, or two unknown names (or two names of a nested object)
/// falling on the same bit of a 64-bit set. Those records are rare and the general path
/// checks them exactly.
struct FlatRecordScanner: ~Copyable {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let base: UnsafePointer<UInt8>
    private let count: Int
    private var index = 0
    /// The OR of every word (or byte) a string scan read: its high bits say whether the
    /// record may hold bytes ≥ 0x80 (the words overrun strings, so it may say so wrongly).
    private var highBits: UInt64 = 0
    private let table: UnsafeBufferPointer<FlatFieldTable.Entry>

    /// Scans `bytes`; on success records the span of every known top-level field in
    /// `spans` (indexed by `MessageDecoder.Field.rawValue`, all absent on entry) and returns
    /// the content hash. On `nil`, `spans` may hold partial results.
    static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, spans: UnsafeMutableBufferPointer<JSONSpan>,
        table: UnsafeBufferPointer<FlatFieldTable.Entry>
    ) -> UInt64? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        var scanner = FlatRecordScanner(bytes: bytes, base: base, count: bytes.count, table: table)
        return scanner.record(spans)
    }

    private init(
        bytes: UnsafeBufferPointer<UInt8>, base: UnsafePointer<UInt8>, count: Int,
        table: UnsafeBufferPointer<FlatFieldTable.Entry>
    ) {
        self.bytes = bytes
        self.base = base
        self.count = count
        self.table = table
    }

    private mutating func record(_ spans: UnsafeMutableBufferPointer<JSONSpan>) -> UInt64? {
        skipWhitespace()
        guard at(UInt8(ascii: "{")) else { return nil }
        index += 1
        skipWhitespace()
        var hash: UInt64 = 0
        var members: UInt64 = 0
        var unknownSeen: UInt64 = 0
        while true {
            // A name (an empty record `{}` gives up here too: the general path says why it is wrong).
            guard let key = name() else { return nil }
            var keyHash: UInt64 = 0
            let field = FlatFieldTable.field(table, base: base, count: count, start: key.start, end: key.end, hash: &keyHash)
            if field >= 0 {
                guard spans[field].start < 0 else { return nil }
            } else {
                guard let hash = distinctName(key, seen: &unknownSeen) else { return nil }
                keyHash = hash
            }
            guard let (value, valueHash) = value(containers: true) else { return nil }
            if field >= 0 { spans[field] = value }
            // Top-level nulls count as absent (SPEC §1), as in `JSONScanner`.
            if value.kind != .null {
                hash = hash &+ StableHash.mix(keyHash ^ StableHash.p1, valueHash ^ StableHash.p2)
                members += 1
            }
            guard let more = separator(closing: UInt8(ascii: "}")) else { return nil }
            if !more { break }
        }
        skipWhitespace()
        guard index == count else { return nil }
        if highBits & SWAR.highs != 0, !UTF8Validation.isValid(bytes) { return nil }
        return StableHash.mix(hash ^ 0x6f62_6a00, members &+ StableHash.p3)
    }

    /// In a record this scanner accepted: the content bounds of the string value of the
    /// member `name` of `object` (a flat object, no escapes), or nil when there is no such
    /// member or its value is not a string. Only for such records: it does not check syntax,
    /// and reads a string as ending at the next quote.
    static func stringMember(_ bytes: UnsafeBufferPointer<UInt8>, of object: JSONSpan, named name: [UInt8]) -> Range<Int>? {
        let close = object.end - 1  // the object's `}`
        var i = object.start + 1
        func skipWhitespace() {
            while i < close, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }
        /// From an opening quote: the content bounds, with `i` past the closing quote.
        func string() -> Range<Int> {
            let start = i + 1
            i = start
            while i < close, bytes[i] != UInt8(ascii: "\"") { i += 1 }
            defer { i += 1 }
            return start..<i
        }
        while true {
            skipWhitespace()
            guard i < close, bytes[i] == UInt8(ascii: "\"") else { return nil }
            let key = string()
            let matches = name.withUnsafeBufferPointer { equal(UnsafeBufferPointer(rebasing: bytes[key]), $0) }
            skipWhitespace()
            i += 1  // :
            skipWhitespace()
            guard i < close else { return nil }
            if bytes[i] == UInt8(ascii: "\"") {
                let value = string()
                if matches { return value }
            } else {
                if matches { return nil }
                while i < close, bytes[i] != UInt8(ascii: ","), bytes[i] != 0x20, bytes[i] != 0x0A, bytes[i] != 0x0D,
                    bytes[i] != 0x09
                {
                    i += 1
                }
            }
            skipWhitespace()
            guard i < close, bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }

    // MARK: Values

    @inline(__always)
    private func at(_ byte: UInt8) -> Bool { index < count && base[index] == byte }

    @inline(__always)
    private mutating func skipWhitespace() {
        while index < count {
            let b = base[index]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            index += 1
        }
    }

    /// A scalar, or (when `containers`) a flat object or array of scalars.
    private mutating func value(containers: Bool) -> (JSONSpan, UInt64)? {
        guard index < count else { return nil }
        let start = index
        switch base[index] {
        case UInt8(ascii: "\""):
            guard let (contentStart, contentEnd) = string() else { return nil }
            let hash = StableHash.hash(base + contentStart, contentEnd - contentStart, seed: JSONScanner.stringSeed)
            return (JSONSpan(start: contentStart, end: contentEnd, kind: .string, escaped: false), hash ^ 0x5f5f)
        case UInt8(ascii: "{"):
            guard containers, let hash = flatObject() else { return nil }
            return (JSONSpan(start: start, end: index, kind: .object, escaped: false), hash)
        case UInt8(ascii: "["):
            guard containers, let hash = flatArray() else { return nil }
            return (JSONSpan(start: start, end: index, kind: .array, escaped: false), hash)
        case UInt8(ascii: "t"):
            guard literal(0x65_7572_74, length: 4) else { return nil }  // "true", little-endian
            return (JSONSpan(start: start, end: index, kind: .trueValue, escaped: false), 0x7472_7565)
        case UInt8(ascii: "f"):
            guard literal(0x65_736c_6166, length: 5) else { return nil }  // "false"
            return (JSONSpan(start: start, end: index, kind: .falseValue, escaped: false), 0x6661_6c73)
        case UInt8(ascii: "n"):
            guard literal(0x6c_6c75_6e, length: 4) else { return nil }  // "null"
            return (JSONSpan(start: start, end: index, kind: .null, escaped: false), 0x6e75_6c6c)
        default:
            guard number() else { return nil }
            let span = JSONSpan(start: start, end: index, kind: .number, escaped: false)
            return (span, JSONScanner.numberHash(bytes, span))
        }
    }

    /// The literal whose bytes, little-endian, are `word`.
    private mutating func literal(_ word: UInt64, length: Int) -> Bool {
        guard index + length <= count else { return false }
        for i in 0..<length where base[index + i] != UInt8(truncatingIfNeeded: word >> (8 * UInt64(i))) {
            return false
        }
        index += length
        return true
    }

    /// A string at its opening quote without escapes or control characters: its content's
    /// bounds. `nil` at a backslash, a control character or the end.
    private mutating func string() -> (start: Int, end: Int)? {
        let start = index + 1
        var i = start
        while i + 8 <= count {
            let word = UInt64(littleEndian: UnsafeRawPointer(base).loadUnaligned(fromByteOffset: i, as: UInt64.self))
            highBits |= word
            let stops = SWAR.stringStops(word)
            if stops == 0 {
                i += 8
                continue
            }
            i += stops.trailingZeroBitCount >> 3
            guard base[i] == UInt8(ascii: "\"") else { return nil }
            index = i + 1
            return (start, i)
        }
        while i < count {
            let b = base[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                return (start, i)
            }
            guard b >= 0x20, b != UInt8(ascii: "\\") else { return nil }
            highBits |= UInt64(b)
            i += 1
        }
        return nil
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; whatever follows is the caller's.
    private mutating func number() -> Bool {
        if at(UInt8(ascii: "-")) { index += 1 }
        guard index < count, DecimalParser.isDigit(base[index]) else { return false }
        if base[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            digits()
        }
        if at(UInt8(ascii: ".")) {
            index += 1
            guard index < count, DecimalParser.isDigit(base[index]) else { return false }
            digits()
        }
        if at(UInt8(ascii: "e")) || at(UInt8(ascii: "E")) {
            index += 1
            if at(UInt8(ascii: "+")) || at(UInt8(ascii: "-")) { index += 1 }
            guard index < count, DecimalParser.isDigit(base[index]) else { return false }
            digits()
        }
        return true
    }

    @inline(__always)
    private mutating func digits() {
        while index < count, DecimalParser.isDigit(base[index]) { index += 1 }
    }

    /// `{` name `:` scalar, … `}` with distinct names (by hash bit); the hash of a nested
    /// object, whose null members count.
    private mutating func flatObject() -> UInt64? {
        index += 1  // {
        skipWhitespace()
        if at(UInt8(ascii: "}")) {
            index += 1
            return StableHash.mix(0x6f62_6a00, 0x1)
        }
        var hash: UInt64 = 0
        var members: UInt64 = 0
        var seen: UInt64 = 0
        while true {
            guard let key = name(), let keyHash = distinctName(key, seen: &seen) else { return nil }
            guard let (_, valueHash) = value(containers: false) else { return nil }
            hash = hash &+ StableHash.mix(keyHash ^ StableHash.p1, valueHash ^ StableHash.p2)
            members += 1
            guard let more = separator(closing: UInt8(ascii: "}")) else { return nil }
            if !more { return StableHash.mix(hash ^ 0x6f62_6a00, members &+ StableHash.p3) }
        }
    }

    /// `[` scalar, … `]`: the hash of the elements in order.
    private mutating func flatArray() -> UInt64? {
        index += 1  // [
        var hash: UInt64 = 0x6172_7261
        skipWhitespace()
        if at(UInt8(ascii: "]")) {
            index += 1
            return hash
        }
        while true {
            guard let (_, valueHash) = value(containers: false) else { return nil }
            hash = StableHash.combine(hash, valueHash)
            guard let more = separator(closing: UInt8(ascii: "]")) else { return nil }
            if !more { return hash }
        }
    }

    /// A member's name and the `:` after it (whitespace around it skipped): the name's bounds.
    @inline(__always)
    private mutating func name() -> (start: Int, end: Int)? {
        guard at(UInt8(ascii: "\"")), let key = string() else { return nil }
        skipWhitespace()
        guard at(UInt8(ascii: ":")) else { return nil }
        index += 1
        skipWhitespace()
        return key
    }

    /// The hash of a name, unless its bit in `seen` is taken (maybe by the same name).
    @inline(__always)
    private func distinctName(_ name: (start: Int, end: Int), seen: inout UInt64) -> UInt64? {
        let hash = StableHash.hash(base + name.start, name.end - name.start, seed: JSONScanner.stringSeed)
        let bit: UInt64 = 1 << (hash >> 58)
        guard seen & bit == 0 else { return nil }
        seen |= bit
        return hash
    }

    /// After a member or element: `true` past a `,` (and whitespace), `false` past `closing`,
    /// nil at anything else.
    @inline(__always)
    private mutating func separator(closing: UInt8) -> Bool? {
        skipWhitespace()
        guard index < count else { return nil }
        if base[index] == UInt8(ascii: ",") {
            index += 1
            skipWhitespace()
            return true
        }
        guard base[index] == closing else { return nil }
        index += 1
        return false
    }
}

/// The known top-level names (`MessageDecoder.Field`) by their bytes: a perfect hash of
/// the name's first word and length into 64 slots, then both masked words compared. A
/// known name's string hash is stored, so only unknown names are hashed.
struct FlatFieldTable: Sendable {
    struct Entry: Sendable {
        var word0: UInt64 = 0
        var word1: UInt64 = 0
        var length = 0
        /// `Field.rawValue`, or -1 for an empty slot.
        var field = -1
        /// The name's hash as `JSONScanner` computes it (`JSONScanner.stringSeed`).
        var hash: UInt64 = 0
    }

    static let slots = 64
    /// Known names are 2 to 12 bytes.
    static let lengths = 2...12
    /// Slots 0..<64 hold the names, at `slot(word0:length:multiplier:)`; the extra last
    /// entry's `word0` is the multiplier, so a lookup needs nothing but this buffer.
    let entries: [Entry]

    static let shared = FlatFieldTable()

    @inline(__always)
    static func slot(word0: UInt64, length: Int, multiplier: UInt64) -> Int {
        Int(((word0 ^ UInt64(length) << 58) &* multiplier) >> 58)
    }

    private init() {
        var names: [Entry] = []
        for field in MessageDecoder.Field.allCases {
            let name = field.name
            let bytes = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            precondition(FlatFieldTable.lengths.contains(bytes.count))
            var entry = Entry(length: bytes.count, field: field.rawValue, hash: StableHash.hash(bytes, seed: JSONScanner.stringSeed))
            for (i, byte) in bytes.enumerated() {
                if i < 8 { entry.word0 |= UInt64(byte) << (8 * UInt64(i)) } else { entry.word1 |= UInt64(byte) << (8 * UInt64(i - 8)) }
            }
            names.append(entry)
        }
        // The slot depends on a name's first eight bytes and its length only: two names that
        // share both could never be told apart, and the search below would not end.
        for (i, a) in names.enumerated() {
            for b in names[(i + 1)...] {
                precondition(
                    a.word0 != b.word0 || a.length != b.length,
                    "two field names share their first 8 bytes and their length: extend FlatFieldTable.slot")
            }
        }
        // The first odd multiplier (of a fixed sequence) that puts every name in its own slot;
        // with 64 slots and ~20 names, a few hundred candidates are plenty.
        var candidate: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1_000_000 {
            let multiplier = candidate | 1
            var table = Array(repeating: Entry(), count: FlatFieldTable.slots + 1)
            var distinct = true
            for name in names {
                let slot = FlatFieldTable.slot(word0: name.word0, length: name.length, multiplier: multiplier)
                guard table[slot].field < 0 else {
                    distinct = false
                    break
                }
                table[slot] = name
            }
            if distinct {
                table[FlatFieldTable.slots].word0 = multiplier
                entries = table
                return
            }
            candidate = candidate &* 0x5851_F42D_4C95_7F2D &+ 0x1405_7B7E_F767_814F
        }
        preconditionFailure("no multiplier puts every field name in its own slot: widen FlatFieldTable")
    }

    /// The field the name `base[start..<end]` is, with its hash in `hash`; or -1.
    @inline(__always)
    static func field(
        _ table: UnsafeBufferPointer<Entry>, base: UnsafePointer<UInt8>, count: Int, start: Int, end: Int,
        hash: inout UInt64
    ) -> Int {
        let length = end - start
        guard lengths.contains(length) else { return -1 }
        var word0: UInt64
        var word1: UInt64
        if start + 16 <= count {
            let raw = UnsafeRawPointer(base)
            word0 = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: start, as: UInt64.self))
            word1 = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self))
        } else {
            (word0, word1) = (0, 0)
            for i in 0..<length {
                let byte = UInt64(base[start + i])
                if i < 8 { word0 |= byte << (8 * UInt64(i)) } else { word1 |= byte << (8 * UInt64(i - 8)) }
            }
        }
        if length < 8 { word0 &= (1 << (8 * UInt64(length))) &- 1 }
        word1 = length <= 8 ? 0 : word1 & ((1 << (8 * UInt64(length - 8))) &- 1)
        let entry = table[slot(word0: word0, length: length, multiplier: table[slots].word0)]
        guard entry.field >= 0, entry.word0 == word0, entry.word1 == word1, entry.length == length else { return -1 }
        hash = entry.hash
        return entry.field
    }
}
