/// A JSON value's kind.
public enum JSONKind: UInt8, Sendable {
    case string, number, object, array, trueValue, falseValue, null
}

/// Where a value sits in the record. For strings, `start..<end` is the content between
/// the quotes and `escaped` says whether it holds backslash escapes.
public struct JSONSpan: Sendable {
    public var start: Int
    public var end: Int
    public var kind: JSONKind
    public var escaped: Bool
}

/// The record is not well-formed JSON, or breaks a rule of SPEC §1 that makes it
/// malformed (repeated field name, more than 32 levels deep).
public struct JSONMalformed: Error, Sendable {
    public var detail: StaticString
    public var offset: Int
}

/// A validating, allocation-free scanner over one JSON record.
///
/// It checks the full JSON grammar (RFC 8259) over input already known to be valid
/// UTF-8, rejects repeated field names and nesting beyond `maxDepth`, and computes a
/// canonical content hash: object members hash independently of their order, strings
/// by their decoded text, numbers by their exact decimal value (`1.50` = `1.5` = `15e-1`),
/// and top-level members whose value is `null` count as absent (SPEC §1).
public struct JSONScanner: ~Copyable {
    public static let maxDepth = 32

    public let bytes: UnsafeBufferPointer<UInt8>
    public var index = 0
    /// Keys of the objects currently open, for repeated-name detection (stack discipline).
    private var keys: [KeyRef]
    /// Decoded text of escaped strings.
    public var decoded: [UInt8]
    /// The day of the last timestamp read, kept from record to record through the scratch.
    var days: EventTime.DayCache

    struct KeyRef {
        var hash: UInt64
        var start: Int
        var end: Int
        var escaped: Bool
    }

    public init(bytes: UnsafeBufferPointer<UInt8>, scratch: inout JSONScratch) {
        self.bytes = bytes
        self.keys = scratch.takeKeys()
        self.decoded = scratch.takeDecoded()
        self.days = scratch.days
    }

    /// Hands the scratch buffers back for reuse by the next record.
    public consuming func finish(into scratch: inout JSONScratch) {
        scratch.give(keys: keys, decoded: decoded)
        scratch.days = days
    }

    // MARK: Top level

    /// Scans a whole record that must be one object, calling `member` for each top-level
    /// member with its key span and value span. Returns the record's content hash.
    public mutating func scanRecord(
        _ member: (_ key: JSONSpan, _ value: JSONSpan, _ scanner: inout JSONScanner) throws(JSONMalformed) -> Void
    ) throws(JSONMalformed) -> UInt64 {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else {
            throw JSONMalformed(detail: "a record must be a JSON object", offset: index)
        }
        let hash = try scanObject(depth: 1, topLevel: true, member: member)
        skipWhitespace()
        guard index == bytes.count else { throw JSONMalformed(detail: "data after the record", offset: index) }
        return hash
    }

    /// Scans one value at the current position (used for standalone documents).
    public mutating func scanDocument() throws(JSONMalformed) -> (JSONSpan, UInt64) {
        skipWhitespace()
        let result = try scanValue(depth: 1)
        skipWhitespace()
        guard index == bytes.count else { throw JSONMalformed(detail: "data after the value", offset: index) }
        return result
    }

    // MARK: Values

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            let b = bytes[index]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            index += 1
        }
    }

    public mutating func scanValue(depth: Int) throws(JSONMalformed) -> (JSONSpan, UInt64) {
        guard index < bytes.count else { throw JSONMalformed(detail: "unexpected end", offset: index) }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "\""):
            let span = try scanString()
            return (span, stringHash(span) ^ 0x5f5f)
        case UInt8(ascii: "{"):
            guard depth <= JSONScanner.maxDepth else { throw JSONMalformed(detail: "nested too deeply", offset: index) }
            let hash = try scanObject(depth: depth, topLevel: false) { _, _, _ throws(JSONMalformed) in }
            return (JSONSpan(start: start, end: index, kind: .object, escaped: false), hash)
        case UInt8(ascii: "["):
            guard depth <= JSONScanner.maxDepth else { throw JSONMalformed(detail: "nested too deeply", offset: index) }
            let hash = try scanArray(depth: depth)
            return (JSONSpan(start: start, end: index, kind: .array, escaped: false), hash)
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return (JSONSpan(start: start, end: index, kind: .trueValue, escaped: false), 0x7472_7565)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return (JSONSpan(start: start, end: index, kind: .falseValue, escaped: false), 0x6661_6c73)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return (JSONSpan(start: start, end: index, kind: .null, escaped: false), 0x6e75_6c6c)
        default:
            let span = try scanNumber()
            return (span, JSONScanner.numberHash(bytes, span))
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONMalformed) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw JSONMalformed(detail: "bad literal", offset: index) }
        let p = literal.utf8Start
        for i in 0..<count where bytes[index + i] != p[i] {
            throw JSONMalformed(detail: "bad literal", offset: index)
        }
        index += count
    }

    private mutating func scanObject(
        depth: Int, topLevel: Bool,
        member: (JSONSpan, JSONSpan, inout JSONScanner) throws(JSONMalformed) -> Void
    ) throws(JSONMalformed) -> UInt64 {
        index += 1  // {
        let keysBase = keys.count
        // One `removeLast` per key: `removeSubrange` went through the generic replaceSubrange.
        defer { while keys.count > keysBase { keys.removeLast() } }
        var hash: UInt64 = 0
        var memberCount: UInt64 = 0
        // One bit per key hash: when a key's bit is already set, the object's earlier keys are
        // searched for the same full hash (small objects only), and only an object with two
        // equal key hashes (or a large one) is checked for repeated names.
        var seen: UInt64 = 0
        var mayRepeat = false
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return StableHash.mix(0x6f62_6a00, 0x1)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw JSONMalformed(detail: "expected a field name", offset: index)
            }
            let key = try scanString()
            let keyHash = stringHash(key)
            keys.append(KeyRef(hash: keyHash, start: key.start, end: key.end, escaped: key.escaped))
            let bit: UInt64 = 1 << (keyHash >> 58)
            if seen & bit != 0, !mayRepeat {
                mayRepeat = keys.count - keysBase > 16 || keys[keysBase..<(keys.count - 1)].contains { $0.hash == keyHash }
            }
            seen |= bit
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw JSONMalformed(detail: "expected ':'", offset: index)
            }
            index += 1
            skipWhitespace()
            let (value, valueHash) = try scanValue(depth: depth + 1)
            if topLevel { try member(key, value, &self) }
            if !topLevel || value.kind != .null {
                hash = hash &+ StableHash.mix(keyHash ^ StableHash.p1, valueHash ^ StableHash.p2)
                memberCount += 1
            }
            skipWhitespace()
            guard index < bytes.count else { throw JSONMalformed(detail: "unterminated object", offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { throw JSONMalformed(detail: "expected ',' or '}'", offset: index) }
            index += 1
            break
        }
        if mayRepeat { try checkRepeatedKeys(from: keysBase) }
        return StableHash.mix(hash ^ 0x6f62_6a00, memberCount &+ StableHash.p3)
    }

    private mutating func scanArray(depth: Int) throws(JSONMalformed) -> UInt64 {
        index += 1  // [
        var hash: UInt64 = 0x6172_7261
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return hash
        }
        while true {
            skipWhitespace()
            let (_, valueHash) = try scanValue(depth: depth + 1)
            hash = StableHash.combine(hash, valueHash)
            skipWhitespace()
            guard index < bytes.count else { throw JSONMalformed(detail: "unterminated array", offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { throw JSONMalformed(detail: "expected ',' or ']'", offset: index) }
            index += 1
            return hash
        }
    }

    /// Repeated names make a record malformed (SPEC §1). Small objects compare pairwise;
    /// large ones sort their key hashes, so a hostile 100k-key object stays O(n log n).
    private mutating func checkRepeatedKeys(from base: Int) throws(JSONMalformed) {
        let count = keys.count - base
        guard count > 1 else { return }
        if count <= 16 {
            for i in base..<(keys.count - 1) {
                for j in (i + 1)..<keys.count where keys[i].hash == keys[j].hash {
                    if sameKey(keys[i], keys[j]) { throw JSONMalformed(detail: "repeated field name", offset: keys[j].start) }
                }
            }
            return
        }
        keys[base...].sort { $0.hash < $1.hash }
        for i in base..<(keys.count - 1) where keys[i].hash == keys[i + 1].hash {
            if sameKey(keys[i], keys[i + 1]) { throw JSONMalformed(detail: "repeated field name", offset: keys[i + 1].start) }
        }
    }

    private mutating func sameKey(_ a: KeyRef, _ b: KeyRef) -> Bool {
        let first = decodedString(JSONSpan(start: a.start, end: a.end, kind: .string, escaped: a.escaped))
        let second = decodedString(JSONSpan(start: b.start, end: b.end, kind: .string, escaped: b.escaped))
        return first == second
    }

    // MARK: Strings

    /// Scans a string starting at its opening quote; validates escapes (including
    /// `\u` surrogate pairs) and rejects raw control characters.
    public mutating func scanString() throws(JSONMalformed) -> JSONSpan {
        let start = index + 1  // after the quote
        let count = bytes.count
        var i = start
        var escaped = false
        while true {
            // Eight bytes at a time: skip to the first quote, backslash or control character.
            if i + 8 <= count {
                let stops = SWAR.stringStops(SWAR.load(bytes, at: i))
                if stops == 0 {
                    i += 8
                    continue
                }
                i += stops.trailingZeroBitCount >> 3
            }
            guard i < count else {
                index = i
                throw JSONMalformed(detail: "unterminated string", offset: i)
            }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                return JSONSpan(start: start, end: i, kind: .string, escaped: escaped)
            }
            if b == UInt8(ascii: "\\") {
                escaped = true
                index = i
                try scanEscape()
                i = index
                continue
            }
            guard b >= 0x20 else {
                index = i
                throw JSONMalformed(detail: "control character in string", offset: i)
            }
            i += 1
        }
    }

    private mutating func scanEscape() throws(JSONMalformed) {
        index += 1  // backslash
        guard index < bytes.count else { throw JSONMalformed(detail: "unterminated escape", offset: index) }
        switch bytes[index] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            index += 1
        case UInt8(ascii: "u"):
            let unit = try hex4(at: index + 1)
            index += 5
            if (0xD800...0xDBFF).contains(unit) {
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                else { throw JSONMalformed(detail: "lone surrogate", offset: index) }
                let low = try hex4(at: index + 2)
                guard (0xDC00...0xDFFF).contains(low) else { throw JSONMalformed(detail: "lone surrogate", offset: index) }
                index += 6
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONMalformed(detail: "lone surrogate", offset: index)
            }
        default:
            throw JSONMalformed(detail: "bad escape", offset: index)
        }
    }

    private func hex4(at position: Int) throws(JSONMalformed) -> UInt32 {
        guard position + 4 <= bytes.count else { throw JSONMalformed(detail: "short \\u escape", offset: position) }
        var value: UInt32 = 0
        for i in position..<(position + 4) {
            let b = bytes[i]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw JSONMalformed(detail: "bad \\u escape", offset: i)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// The decoded UTF-8 text of a string span (already validated by `scanString`).
    public mutating func decodedString(_ span: JSONSpan) -> String {
        if !span.escaped {
            return Self.string(UnsafeBufferPointer(rebasing: bytes[span.start..<span.end]))
        }
        decodeEscaped(span)
        return decoded.withUnsafeBufferPointer { Self.string($0) }
    }

    /// A `String` of UTF-8 bytes. Up to 15 bytes, the bytes are copied straight into the
    /// small string's storage (`String(decoding:)` moves them one byte at a time, ~10
    /// instructions a byte); the standard library still checks them (ASCII: a word mask).
    @inline(__always)
    static func string(_ utf8: UnsafeBufferPointer<UInt8>) -> String {
        guard utf8.count <= 15, let source = utf8.baseAddress else { return String(decoding: utf8, as: UTF8.self) }
        return String(unsafeUninitializedCapacity: utf8.count) { target in
            target.baseAddress!.initialize(from: source, count: utf8.count)
            return utf8.count
        }
    }

    /// Byte length of the decoded string.
    public mutating func decodedLength(_ span: JSONSpan) -> Int {
        if !span.escaped { return span.end - span.start }
        decodeEscaped(span)
        return decoded.count
    }

    /// Calls `body` with the decoded bytes of a string span.
    public mutating func withDecoded<R>(_ span: JSONSpan, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if !span.escaped { return body(UnsafeBufferPointer(rebasing: bytes[span.start..<span.end])) }
        decodeEscaped(span)
        return decoded.withUnsafeBufferPointer(body)
    }

    private mutating func stringHash(_ span: JSONSpan) -> UInt64 {
        withDecoded(span) { StableHash.hash($0, seed: JSONScanner.stringSeed) }
    }

    /// The seed of a string's hash (keys and values; a string value also xors in 0x5f5f).
    static let stringSeed: UInt64 = 0x7374_7200

    /// Decodes an escaped span into `decoded`. The span was validated, so this cannot fail.
    private mutating func decodeEscaped(_ span: JSONSpan) {
        decoded.removeAll(keepingCapacity: true)
        var i = span.start
        while i < span.end {
            let b = bytes[i]
            guard b == UInt8(ascii: "\\") else {
                decoded.append(b)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = (try? hex4(at: i)) ?? 0xFFFD
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    let low = (try? hex4(at: i + 2)) ?? 0xDC00
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                appendUTF8(scalar)
            default: decoded.append(e)  // " \ /
            }
        }
    }

    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            decoded.append(UInt8(scalar))
        case 0x80..<0x800:
            decoded.append(UInt8(0xC0 | scalar >> 6))
            decoded.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            decoded.append(UInt8(0xE0 | scalar >> 12))
            decoded.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            decoded.append(UInt8(0x80 | scalar & 0x3F))
        default:
            decoded.append(UInt8(0xF0 | scalar >> 18))
            decoded.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            decoded.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            decoded.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    // MARK: Numbers

    /// Scans `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    public mutating func scanNumber() throws(JSONMalformed) -> JSONSpan {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, DecimalParser.isDigit(bytes[index]) else {
            throw JSONMalformed(detail: "expected a value", offset: start)
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, DecimalParser.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, DecimalParser.isDigit(bytes[index]) else {
                throw JSONMalformed(detail: "bad number", offset: index)
            }
            while index < bytes.count, DecimalParser.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, DecimalParser.isDigit(bytes[index]) else {
                throw JSONMalformed(detail: "bad number", offset: index)
            }
            while index < bytes.count, DecimalParser.isDigit(bytes[index]) { index += 1 }
        }
        return JSONSpan(start: start, end: index, kind: .number, escaped: false)
    }

    /// Hash of a number's exact value: sign, significant digits without leading or
    /// trailing zeros, and the decimal exponent of the last one.
    static func numberHash(_ bytes: UnsafeBufferPointer<UInt8>, _ span: JSONSpan) -> UInt64 {
        var i = span.start
        var negative = false
        if bytes[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var h: UInt64 = 0x6e75_6d00
        var pendingZeros = 0
        var significant = 0
        var pointSeen = false
        var exponent = 0  // decimal exponent of the last digit consumed
        while i < span.end {
            let b = bytes[i]
            if b == UInt8(ascii: ".") {
                pointSeen = true
                i += 1
                continue
            }
            guard DecimalParser.isDigit(b) else { break }
            if pointSeen { exponent -= 1 }
            if b == UInt8(ascii: "0") {
                if significant > 0 { pendingZeros += 1 }
            } else {
                for _ in 0..<pendingZeros { h = StableHash.combine(h, 0) }
                significant += pendingZeros + 1
                pendingZeros = 0
                h = StableHash.combine(h, UInt64(b))
            }
            i += 1
        }
        // Trailing zeros raise the exponent of the last significant digit.
        exponent += pendingZeros
        if i < span.end {  // exponent part
            i += 1
            var expNegative = false
            if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                expNegative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            var value = 0
            while i < span.end {
                if value < 100_000_000 { value = value * 10 + Int(bytes[i] - UInt8(ascii: "0")) }
                i += 1
            }
            exponent += expNegative ? -value : value
        }
        if significant == 0 { return StableHash.mix(0x6e75_6d30, StableHash.p0) }  // every zero, -0 included
        h = StableHash.combine(h, UInt64(bitPattern: Int64(exponent)))
        return StableHash.combine(h, negative ? 1 : 2)
    }
}

/// Buffers a decoder lends to each scanner so that scanning allocates nothing in the
/// steady state.
public struct JSONScratch: Sendable {
    fileprivate var keys: [JSONScanner.KeyRef] = []
    fileprivate var decoded: [UInt8] = []
    var days = EventTime.DayCache()

    public init() {
        keys.reserveCapacity(64)
        decoded.reserveCapacity(256)
    }

    mutating func takeKeys() -> [JSONScanner.KeyRef] {
        var taken: [JSONScanner.KeyRef] = []
        swap(&taken, &keys)
        taken.removeAll(keepingCapacity: true)
        return taken
    }

    mutating func takeDecoded() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &decoded)
        return taken
    }

    mutating func give(keys: [JSONScanner.KeyRef], decoded: [UInt8]) {
        self.keys = keys
        self.decoded = decoded
    }
}

extension JSONScanner.KeyRef: Sendable {}

/// Byte searches eight bytes at a time in a `UInt64` (SIMD within a register).
enum SWAR {
    static let ones: UInt64 = 0x0101_0101_0101_0101
    static let highs: UInt64 = 0x8080_8080_8080_8080

    @inline(__always)
    static func load(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> UInt64 {
        // The caller checked index + 8 <= bytes.count.
        UInt64(littleEndian: UnsafeRawPointer(bytes.baseAddress!).loadUnaligned(fromByteOffset: index, as: UInt64.self))
    }

    /// The high bit of each zero byte of `word`. Bytes above the first zero byte may be
    /// flagged falsely (borrows), so only "any" and the lowest flag are exact.
    @inline(__always)
    static func zeros(_ word: UInt64) -> UInt64 { (word &- ones) & ~word & highs }

    /// Whether some byte of `word` equals `byte`.
    @inline(__always)
    static func has(_ word: UInt64, _ byte: UInt8) -> Bool { zeros(word ^ (ones &* UInt64(byte))) != 0 }

    /// Flags for bytes below 0x20 (bytes ≥ 0x80 never count); exact as `zeros` is.
    @inline(__always)
    static func controls(_ word: UInt64) -> UInt64 { (word &- ones &* 0x20) & ~word & highs }

    /// Flags where a string scan must stop (quote, backslash, control character): the
    /// lowest flag (little-endian: `trailingZeroBitCount / 8`) is the first such byte.
    @inline(__always)
    static func stringStops(_ word: UInt64) -> UInt64 {
        zeros(word ^ (ones &* UInt64(UInt8(ascii: "\"")))) | zeros(word ^ (ones &* UInt64(UInt8(ascii: "\\"))))
            | controls(word)
    }
}
