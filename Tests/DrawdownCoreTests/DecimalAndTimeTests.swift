import DrawdownCore
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

    @Test func durations() {
        #expect(DurationParser.nanoseconds("24h") == 86_400_000_000_000)
        #expect(DurationParser.nanoseconds("1h30m") == 5_400_000_000_000)
        #expect(DurationParser.nanoseconds("500ms") == 500_000_000)
        #expect(DurationParser.nanoseconds("soon") == nil)
        #expect(DurationParser.nanoseconds("") == nil)
        #expect(DurationParser.nanoseconds("10") == nil)
    }
}
