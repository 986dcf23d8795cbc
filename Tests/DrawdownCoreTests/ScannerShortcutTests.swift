@testable import DrawdownCore
import Testing

/// The decoder's shortcuts against what they replace: the repeated-name check (bit set,
/// then the object's earlier key hashes, then names) against a plain set of decoded names,
/// the byte match of `type` against `MessageType(rawValue:)`, UTF-8 validation against
/// the standard library's, the plain-decimal path against the general decimal parser, and
/// timestamps read through the day cache against reading them afresh.
@Suite struct ScannerShortcutTests {
    typealias Generator = SplitMix

    static func scan(_ text: String) -> Bool {
        var copy = text
        return copy.withUTF8 { bytes in
            var scratch = JSONScratch()
            var scanner = JSONScanner(bytes: bytes, scratch: &scratch)
            let wellFormed: Bool
            do throws(JSONMalformed) {
                _ = try scanner.scanDocument()
                wellFormed = true
            } catch {
                wellFormed = false
            }
            scanner.finish(into: &scratch)
            return wellFormed
        }
    }

    /// Objects of 0–40 keys drawn from a few names (some written with escapes), nested one
    /// level: rejected exactly when one object repeats a decoded name.
    @Test func repeatedNamesAreFoundExactlyWhenPresent() {
        var generator = Generator(state: 17)
        let names = ["a", "b", "id", "cost", "meter", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"]
        let spelled = ["a": #"\u0061"#, "id": #"i\u0064"#, "cost": #"c\u006fst"#]
        func object(_ size: Int, _ repeated: inout Bool, depth: Int) -> String {
            var seen = Set<String>()
            var members: [String] = []
            for n in 0..<size {
                // Small objects use few names (repeats are likely); large ones mostly distinct.
                let name = size > 20 && generator.next(10) > 0 ? "u\(n)" : names[generator.next(names.count)]
                if !seen.insert(name).inserted { repeated = true }
                let key = spelled[name].flatMap { generator.next(2) == 0 ? $0 : nil } ?? name
                let value = depth == 0 && generator.next(5) == 0 ? object(generator.next(6), &repeated, depth: 1) : "\(n)"
                members.append("\"\(key)\":\(value)")
            }
            return "{" + members.joined(separator: ",") + "}"
        }
        var rejected = 0
        for round in 0..<3_000 {
            var repeated = false
            let text = object(generator.next(round % 3 == 0 ? 40 : 10), &repeated, depth: 0)
            #expect(Self.scan(text) == !repeated, "\(text)")
            if repeated { rejected += 1 }
        }
        #expect(rejected > 300 && rejected < 2_700)
    }

    /// The ASCII fast paths (16 and 8 bytes) against the standard library's validation, on
    /// mostly-ASCII buffers with multi-byte, truncated and invalid sequences at every offset.
    @Test func utf8ValidationMatchesTheStandardLibrary() {
        var generator = Generator(state: 23)
        let pieces: [[UInt8]] = [
            [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
            [0x80], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0x7F],
        ]
        for _ in 0..<20_000 {
            var bytes = (0..<generator.next(48)).map { _ in UInt8(0x20 + generator.next(0x5F)) }
            if generator.next(4) > 0 {
                bytes.insert(contentsOf: pieces[generator.next(pieces.count)], at: generator.next(bytes.count + 1))
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) } == expected, "\(bytes)")
        }
    }

    /// `JSONScanner.string` copies up to 15 bytes straight into a small string; it must give
    /// the string `String(decoding:)` gives for every valid UTF-8 input, short or long.
    @Test func smallStringsEqualTheStandardLibrarysDecoding() {
        var generator = Generator(state: 29)
        let pieces: [[UInt8]] = [[0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0x00], [0x7F]]
        for _ in 0..<20_000 {
            // Whole characters only: ASCII bytes, now and then a multi-byte one.
            var bytes: [UInt8] = []
            for _ in 0..<generator.next(24) {
                if generator.next(6) == 0 {
                    bytes += pieces[generator.next(pieces.count)]
                } else {
                    bytes.append(UInt8(0x20 + generator.next(0x5F)))
                }
            }
            let made = bytes.withUnsafeBufferPointer { JSONScanner.string($0) }
            let expected = String(decoding: bytes, as: UTF8.self)
            #expect(made == expected && Array(made.utf8) == bytes, "\(bytes)")
        }
    }

    /// `StableHash.hash` reads a short tail with a few loads; the values (persisted in
    /// snapshots as content hashes and key fingerprints) must be those of the byte loop.
    @Test func stableHashTailMatchesTheByteLoop() {
        func reference(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
            let count = bytes.count
            var h = seed ^ StableHash.p0 ^ UInt64(truncatingIfNeeded: count) &* StableHash.p3
            guard count > 0 else { return StableHash.mix(h ^ StableHash.p1, StableHash.p2) }
            func word(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
            var offset = 0
            while offset + 16 <= count {
                h = StableHash.mix(word(offset) ^ StableHash.p1, word(offset + 8) ^ h)
                offset += 16
            }
            var a: UInt64 = 0
            var b: UInt64 = 0
            let rest = count - offset
            if rest >= 8 {
                a = word(offset)
                b = word(count - 8)
            } else {
                for i in 0..<rest { a |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
            }
            return StableHash.mix(StableHash.mix(a ^ StableHash.p1, b ^ h) ^ UInt64(truncatingIfNeeded: count), StableHash.p2 ^ seed)
        }
        var generator = Generator(state: 31)
        for length in 0...70 {
            for _ in 0..<40 {
                let bytes = (0..<length).map { _ in UInt8(generator.next(256)) }
                let seed = UInt64(generator.next(1 << 30)) &* 0x9E37_79B9
                #expect(bytes.withUnsafeBufferPointer { StableHash.hash($0, seed: seed) } == reference(bytes, seed: seed))
            }
        }
        // Pinned values (computed independently, from a Python transcription of the byte loop),
        // so that the reference cannot drift with the code.
        let pinned: [(String, UInt64, UInt64)] = [
            ("cus_000458", 0x1234_5678, 0x2c71_2fc8_42f1_8098), ("a", 0x0, 0x992e_e2bc_c83e_0efd),
            ("id", 0x7, 0x7332_681c_aa57_9f34), ("usd", 0x7374_7200, 0xe090_f9ab_38d5_69e6),
            ("meter", 0x7374_7200, 0xb66e_48fa_89c9_2ba5), ("e000000", 0x1, 0xc792_a167_32c9_bc74),
            ("timestamp", 0x7374_7200, 0xb57d_f40f_10bb_608d), ("e0000000001-abcdefgh", 0x9abc_def0, 0x8470_dc66_c69e_75a5),
        ]
        for (text, seed, value) in pinned {
            #expect(StableHash.hash(text, seed: seed) == value, "\(text)")
            #expect(reference(Array(text.utf8), seed: seed) == value, "\(text)")
        }
    }

    @Test func typeMatchesRawValue() {
        let candidates = MessageType.allCases.map(\.rawValue) + ["", "Usage", "usag", "usagee", "grants", "voi", "thresholdx", "x"]
        for name in candidates {
            var copy = name
            let matched = copy.withUTF8 { MessageDecoder.messageType($0) }
            #expect(matched == MessageType(rawValue: name), "\(name)")
        }
    }

    /// Random numbers, most of them near the plain shape (`-?digits(.digits)?`) and its edges
    /// (18 and 19 integer digits, 9 and 10 fractional, leading zeros, signs, exponents, stray
    /// bytes): `parse` answers exactly what the general parser does.
    @Test func plainDecimalsParseAsTheGeneralParserDoes() {
        let seed: UInt64 = 41
        var generator = Generator(state: seed)
        var plain = 0
        var rejected = 0
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(String(generator.next(10))) }) }
        for round in 0..<200_000 {
            var text = ""
            if generator.next(4) == 0 { text += "-" }
            if generator.next(8) == 0 { text += "0" }
            text += digits(generator.next(8) == 0 ? 16 + generator.next(5) : generator.next(7))
            if generator.next(2) == 0 { text += "." + digits(generator.next(8) == 0 ? 8 + generator.next(4) : generator.next(6)) }
            if generator.next(10) == 0 { text += generator.pick(["e", "E3", "e-2", "e+1", " ", "+", "-", ".", "x", "\u{0}"]) }
            if round % 97 == 0 { text = String(text.dropFirst(generator.next(3))) }
            var copy = text
            let (fast, general, isPlain) = copy.withUTF8 {
                (DecimalParser.parse($0), DecimalParser.parseGeneral($0), DecimalParser.parsePlain($0) != nil)
            }
            if isPlain { plain += 1 }
            if case .failure = general { rejected += 1 }
            if fast != general {
                Issue.record("seed \(seed): \(text) parsed \(fast), general parser \(general)")
                return
            }
        }
        #expect(plain > 100_000, "\(plain) took the plain path")
        #expect(rejected > 10_000, "\(rejected) rejected")
    }

    /// Timestamps in runs that share a day (and days that are not dates, times that are not
    /// times, odd offsets and spellings): reading each through one `DayCache` gives what
    /// reading it afresh gives, field for field.
    @Test func timestampsThroughTheDayCacheParseAsAfresh() {
        let seed: UInt64 = 43
        var generator = Generator(state: seed)
        var cache = EventTime.DayCache()
        var parsed = 0
        var date = "2026-03-01"
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        for _ in 0..<200_000 {
            if generator.next(8) == 0 {
                let year = generator.pick([1677, 1969, 1970, 2000, 2024, 2025, 2026, 2100, 2262, 9999])
                date = "\(year)-\(two(generator.next(14)))-\(two(generator.next(33)))"
                if generator.next(20) == 0 { date = generator.pick(["2026-0a-01", "2026/03/01", "+026-03-01", "2026-03-1"]) }
            }
            var text = date + generator.pick(["T", "T", "T", "t", " "])
            text += "\(two(generator.next(25))):\(two(generator.next(61))):\(two(generator.next(61)))"
            if generator.next(4) == 0 { text += "." + String(repeating: "7", count: generator.next(11)) }
            text += generator.pick(["Z", "Z", "z", "+05:30", "-00:00", "-23:59", "+24:00", "", "Zx"])
            var copy = text
            let (fresh, cached) = copy.withUTF8 { (EventTime.parse($0), EventTime.parse($0, days: &cache)) }
            if fresh != nil { parsed += 1 }
            func fields(_ t: EventTime?) -> String {
                t.map { "\($0.nanos) \($0.offsetMinutes) \($0.fractionDigits) \($0.style)" } ?? "nil"
            }
            if fields(fresh) != fields(cached) {
                Issue.record("seed \(seed): \(text) parsed \(fields(fresh)) afresh, \(fields(cached)) through the cache")
                return
            }
        }
        #expect(parsed > 40_000 && parsed < 160_000, "\(parsed) of 200000 parsed")
    }
}
