import DrawdownCore
import DrawdownTestSupport
import Testing

@Suite struct DecimalTests {
    @Test(arguments: [
        ("0", "0"), ("-0", "0"), ("1.50", "1.5"), ("15e-1", "1.5"), ("1E+3", "1000"), ("0.000000001", "0.000000001"),
        ("999999999999999999.999999999", "999999999999999999.999999999"), ("-2.25", "-2.25"), ("0e-999999999", "0"),
        ("100000000000000000000e-3", "100000000000000000"),
    ])
    func parsesExactly(_ text: String, _ expected: String) {
        #expect((try? DecimalParser.parse(text).get())?.description == expected)
    }

    @Test(arguments: [
        ("+1", DecimalError.syntax), (".5", .syntax), ("01", .syntax), (" 1", .syntax), ("1.", .syntax), ("1e", .syntax),
        ("1.0000000000", .precision), ("0.0000000001", .precision), ("1e-10", .precision),
        ("1000000000000000000", .outOfRange), ("1e18", .outOfRange), ("1e999999999", .outOfRange),
        ("1e-999999999", .precision),
    ])
    func rejects(_ text: String, _ error: DecimalError) {
        #expect(DecimalParser.parse(text) == .failure(error))
    }

    @Test func ratingRoundsHalfToEven() {
        func rate(_ q: String, _ p: String) -> String {
            Credits.rated(quantity: try! DecimalParser.parse(q).get(), unitPrice: try! DecimalParser.parse(p).get())!.description
        }
        #expect(rate("0.5", "0.000000001") == "0")  // 0.0000000005 → even 0
        #expect(rate("1.5", "0.000000001") == "0.000000002")  // 0.0000000015 → even 2
        #expect(rate("2.5", "0.000000001") == "0.000000002")  // 0.0000000025 → even 2
        #expect(rate("0.5000001", "0.000000001") == "0.000000001")  // above half rounds up
        #expect(rate("178384", "0.0000005") == "0.089192")
        #expect(rate("3", "0.333333333") == "0.999999999")
    }
}

@Suite struct EventTimeTests {
    @Test(arguments: [
        "2026-11-24T12:00:00Z", "2026-11-24T12:00:00.123Z", "2026-11-01T18:48:32.800000+02:00",
        "2026-11-01t23:25:36.617z", "2026-11-01T00:01:00+00:00", "2024-02-29T23:59:59.999999999-05:30",
        "1970-01-01T00:00:00-00:00",
    ])
    func echoesTheTextAsWritten(_ text: String) {
        #expect(EventTime.parse(text)?.description == text)
    }

    @Test func offsetsAreNormalisedToTheSameInstant() {
        #expect(EventTime.parse("2026-11-01T18:48:32.8+02:00") == EventTime.parse("2026-11-01T16:48:32.800Z"))
        #expect(EventTime.parse("2026-11-24T00:00:00Z")?.nanos == 1_795_478_400_000_000_000)
    }

    @Test(arguments: [
        "yesterday", "2026-11-24 12:00:00Z", "2026-11-24T12:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-24T24:00:00Z", "2026-11-24T12:00:60Z", "2026-11-24T12:00:00.Z", "2026-11-24T12:00:00.1234567891Z",
        "2026-11-24T12:00:00+2:00", "2026-11-24T12:00:00Z ",
    ])
    func rejectsWhatIsNotRFC3339(_ text: String) {
        #expect(EventTime.parse(text) == nil)
    }

    /// Valid RFC 3339 beyond the range of Int64 nanoseconds: `invalid_field`, no trap.
    @Test(arguments: ["2263-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1600-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59"])
    func rejectsTimesOutsideTheNanosecondRange(_ text: String) {
        #expect(EventTime.parse(text) == nil)
    }

    @Test func durations() {
        #expect(DurationParser.nanoseconds("24h") == 86_400_000_000_000)
        #expect(DurationParser.nanoseconds("1h30m") == 5_400_000_000_000)
        #expect(DurationParser.nanoseconds("500ms") == 500_000_000)
        #expect(DurationParser.nanoseconds("soon") == nil)
        #expect(DurationParser.nanoseconds("") == nil)
        #expect(DurationParser.nanoseconds("10") == nil)
    }
}

/// The output formatters against references built from the standard library's own
/// formatting, over seeded values of every magnitude (the seed is printed; the same seed
/// gives the same values).
@Suite struct FormattingTests {
    /// Plain decimal through `String(Int128)`: sign, whole part, then the 9 fractional
    /// digits with trailing zeros removed.
    static func reference(_ credits: Credits) -> String {
        let magnitude = credits.nanos.magnitude
        let whole = String(magnitude / 1_000_000_000)
        var fraction = String(magnitude % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return (credits.nanos < 0 ? "-" : "") + whole + (fraction.isEmpty ? "" : "." + fraction)
    }

    @Test func decimalsOfEveryMagnitudeMatchTheReference() {
        let seed: UInt64 = 0x0F0A_2026_1202
        print("FormattingTests seed \(seed)")
        var random = SeededGenerator(seed: seed)
        var values: [Int128] = [
            0, 1, -1, 9, 10, 999_999_999, 1_000_000_000, -1_000_000_000, 1_000_000_001, Int128(UInt64.max),
            Int128(UInt64.max) + 1, -Int128(UInt64.max) - 1, Int128(UInt64.max) - 1, Int128.max, Int128.min + 1,
            Int128(Int64.max), Credits.nanosLimit - 1, -(Credits.nanosLimit - 1),
        ]
        for _ in 0..<20_000 {
            // A random number of significant bits (1–127), so every digit count comes up,
            // and often a round fractional part (trailing zeros to strip).
            let bits = Int(random.next() % 127) + 1
            let high = UInt128(random.next()) << 64
            let wide: UInt128 = (high | UInt128(random.next())) >> UInt128(128 - bits)
            var value = Int128(wide)
            if random.next() % 3 == 0 { value -= value % 1_000 }
            if random.next() % 2 == 0 { value = -value }
            values.append(value)
        }
        var failures = 0
        for value in values {
            var bytes: [UInt8] = [0x2A]  // appends after what is there
            Credits(nanos: value).appendDecimal(to: &bytes)
            let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
            if bytes.first != 0x2A || text != Self.reference(Credits(nanos: value)) {
                failures += 1
                if failures < 5 { Issue.record("\(value): \(text), expected \(Self.reference(Credits(nanos: value)))") }
            }
        }
        #expect(failures == 0)
    }

    /// JSON string escaping of ASCII, one byte at a time: what `appendString` wrote before
    /// it copied unescaped runs whole.
    static func escapeReference(_ s: String) -> String {
        var out = "\""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20: out += "\\u00" + String(b >> 4, radix: 16) + String(b & 0xF, radix: 16)
            default: out += String(UnicodeScalar(b))
            }
        }
        return out + "\""
    }

    @Test func stringsAreEscapedLikeTheCharacterByCharacterReference() {
        let seed: UInt64 = 0x0E5C_2026_1202
        print("FormattingTests escape seed \(seed)")
        var random = SeededGenerator(seed: seed)
        let alphabet: [String] = ["a", "Z", "0", "_", "\"", "\\", "\n", "\r", "\t", "\u{01}", "\u{1F}", " ", "/", "é", "€", "😀"]
        for _ in 0..<5_000 {
            let length = Int(random.next() % 40)
            let string = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
            var out: [UInt8] = []
            JSONWriter.appendString(string, to: &out)
            // Non-ASCII bytes pass through untouched: compare bytes, with the reference's
            // ASCII escapes and the original multi-byte sequences.
            var expected: [UInt8] = [UInt8(ascii: "\"")]
            for scalar in string.unicodeScalars {
                if scalar.isASCII {
                    expected += Array(Self.escapeReference(String(scalar)).utf8.dropFirst().dropLast())
                } else {
                    expected += Array(String(scalar).utf8)
                }
            }
            expected.append(UInt8(ascii: "\""))
            #expect(out == expected, "\(string.debugDescription)")
        }
    }

    @Test func timestampsOfEveryShapeEchoAsWritten() {
        let seed: UInt64 = 0x7135_2026_1202
        print("FormattingTests time seed \(seed)")
        var random = SeededGenerator(seed: seed)
        for _ in 0..<5_000 {
            let year = 1970 + Int(random.next() % 300), month = 1 + Int(random.next() % 12), day = 1 + Int(random.next() % 28)
            func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            var text = "\(year)-\(two(month))-\(two(day))" + (random.next() % 5 == 0 ? "t" : "T")
            text += "\(two(Int(random.next() % 24))):\(two(Int(random.next() % 60))):\(two(Int(random.next() % 60)))"
            let digits = Int(random.next() % 10)
            if digits > 0 { text += "." + (0..<digits).map { _ in String(random.next() % 10) }.joined() }
            switch random.next() % 4 {
            case 0: text += "Z"
            case 1: text += "z"
            case 2: text += "-00:00"
            default: text += (random.next() % 2 == 0 ? "+" : "-") + "\(two(Int(random.next() % 24))):\(two(Int(random.next() % 60)))"
            }
            var bytes: [UInt8] = [0x2A]
            // Past 2262-04-11 nanoseconds leave Int64: rejected, not trapped on.
            guard let time = EventTime.parse(text) else {
                if year < 2262 { Issue.record("did not parse \(text)") }
                continue
            }
            time.append(to: &bytes)
            #expect(bytes.first == 0x2A && String(decoding: bytes.dropFirst(), as: UTF8.self) == text, "\(text)")
        }
    }
}
