import DrawdownCore
import Testing

/// Hostile and malformed records (SPEC §1, §4): each is rejected with the right reason,
/// none crashes, and none changes the engine's state — only the `rejected` counter moves
/// (`duplicates` for a `conflict`). Plus the valid corners that must be accepted.
@Suite struct MalformedCorpusTests {
    static let usageRecord = #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","meter":"gpu.seconds","quantity":"12.5","properties":{"region":"eu"}}"#
    static let grantRecord =
        #"{"type":"grant","id":"g9","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"5","priority":10,"meters":["llm.tokens","gpu.seconds"],"category":"p\u00e4id\n"}"#

    /// A usage record for `c1` with `extra` members appended (raw JSON text, leading comma included).
    static func usage(_ extra: String) -> String {
        #"{"id":"e2","customer":"c1","timestamp":"2026-11-01T12:00:00Z""# + extra + "}"
    }

    static func grant(_ extra: String) -> String {
        #"{"type":"grant","id":"g2","customer":"c1","timestamp":"2026-11-01T12:00:00Z""# + extra + "}"
    }

    /// An engine with history: customers, grants, usage, a watermark for `c1`.
    struct Harness {
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var engine = PartitionEngine()

        init() {
            for (bytes, _) in Workload.records(WorkloadSpec(seed: 5, customers: 10, messages: 200)) { _ = apply(bytes) }
            for line in [
                #"{"type":"grant","id":"g1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"100"}"#,
                #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","meter":"gpu.seconds","quantity":"12.5"}"#,
            ] {
                #expect(apply(Array(line.utf8)) == nil)
            }
        }

        /// Decodes and applies; returns the reason when not applied (nil when applied or a duplicate).
        mutating func apply(_ bytes: [UInt8], key: [UInt8]? = nil) -> RejectReason? {
            let decoded = bytes.withUnsafeBufferPointer { record in
                guard let key else { return decoder.decode(record) }
                return key.withUnsafeBufferPointer { decoder.decode(record, key: $0) }
            }
            switch decoded {
            case .failure(let rejection):
                engine.countRejected()
                return rejection.reason
            case .success(let message):
                switch engine.apply(message) {
                case .applied, .duplicate: return nil
                case .conflict: return .conflict
                case .rejected(let rejection): return rejection.reason
                }
            }
        }

        /// Expects `bytes` rejected with `reason` and the state untouched but for one count.
        mutating func expectRejected(
            _ bytes: [UInt8], _ reason: RejectReason, key: [UInt8]? = nil, _ name: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            let before = StateSummary(StateDocument.render([engine]))
            let got = apply(bytes, key: key)
            let after = StateSummary(StateDocument.render([engine]))
            #expect(got == reason, "\(name): \(String(decoding: bytes.prefix(160), as: UTF8.self))", sourceLocation: sourceLocation)
            var expected = before
            if reason == .conflict { expected.duplicates += 1 } else { expected.rejected += 1 }
            #expect(after == expected, "\(name): state changed", sourceLocation: sourceLocation)
        }

        mutating func expectRejected(
            _ text: String, _ reason: RejectReason, key: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
        ) {
            expectRejected(Array(text.utf8), reason, key: key.map { Array($0.utf8) }, text, sourceLocation: sourceLocation)
        }
    }

    static func decode(_ text: String, key: String? = nil, priceBook: PriceBook? = Workload.priceBook) -> Result<Message, Rejection> {
        var decoder = MessageDecoder(priceBook: priceBook)
        return decoder.decode(text, key: key)
    }

    static func accepted(_ text: String, key: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> Message? {
        switch decode(text, key: key) {
        case .success(let message): return message
        case .failure(let rejection):
            Issue.record("rejected (\(rejection.reason.rawValue): \(rejection.detail)): \(text.prefix(200))", sourceLocation: sourceLocation)
            return nil
        }
    }

    // MARK: Malformed JSON

    @Test func truncatedAtEveryByte() {
        var harness = Harness()
        for record in [Self.usageRecord, Self.grantRecord] {
            #expect(Self.accepted(record) != nil)
            let bytes = Array(record.utf8)
            for cut in 0..<bytes.count {
                harness.expectRejected(Array(bytes[..<cut]), .malformed, "cut at \(cut)")
            }
        }
        // The stream goes on: a valid record is still applied.
        #expect(harness.apply(Array(Self.usage(#","cost":1"#).utf8)) == nil)
    }

    @Test func notOneObject() {
        var harness = Harness()
        for text in [
            "", " ", "\t\r\n ", "[]", "[" + Self.usageRecord + "]", #""usage""#, "1", "null", "true", Self.usageRecord + "{}",
            Self.usageRecord + " x", "{", "}", "{}{}", #"{"id" "e"}"#, #"{"id":"e",}"#, #"{,"id":"e"}"#, #"{'id':'e'}"#,
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":01}"#,
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1.}"#,
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":+1}"#,
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":NaN}"#,
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1,"x":tru}"#,
            #"{"id":"e1\x","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"e1\u00g1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
        ] {
            harness.expectRejected(text, .malformed)
        }
    }

    @Test func nestingDepth() {
        var harness = Harness()
        // The record is level 1: 31 more levels is 32 deep (accepted), 32 more is 33 (malformed).
        for (levels, ok) in [(31, true), (32, false), (1_000, false)] {
            let arrays = Self.usage(#","cost":1,"x":"# + String(repeating: "[", count: levels) + String(repeating: "]", count: levels))
            let objects = Self.usage(
                #","cost":1,"properties":"# + String(repeating: #"{"a":"#, count: levels - 1) + "{}" + String(repeating: "}", count: levels - 1))
            for text in [arrays, objects] {
                if ok { #expect(Self.accepted(text) != nil, "depth \(levels + 1)") } else { harness.expectRejected(text, .malformed) }
            }
        }
        // Deep nesting that never closes must not exhaust the stack either.
        harness.expectRejected(Self.usage(#","x":"# + String(repeating: "[", count: 200_000)), .malformed)
    }

    @Test func tooLarge() {
        var harness = Harness()
        let limit = MessageLimits.recordBytesMax
        let head = Self.usage(#","cost":1,"pad":""#)
        // Exactly 1 MiB is accepted; one byte more is `too_large`, even when otherwise valid.
        let exact = String(head.dropLast()) + String(repeating: "a", count: limit - head.utf8.count - 1) + "\"}"
        #expect(exact.utf8.count == limit)
        #expect(Self.accepted(exact) != nil)
        let over = String(head.dropLast()) + String(repeating: "a", count: limit - head.utf8.count) + "\"}"
        harness.expectRejected(over, .tooLarge)
        harness.expectRejected(String(repeating: "{", count: limit + 1), .tooLarge)
        harness.expectRejected(Array(repeating: 0xFF, count: 2 * limit), .tooLarge, "2 MiB of 0xFF")
    }

    // MARK: Invalid UTF-8 and strings

    @Test func invalidUTF8() {
        var harness = Harness()
        let sequences: [(String, [UInt8])] = [
            ("0xFF", [0xFF]), ("0xFE", [0xFE]), ("lone continuation", [0x80]), ("overlong /", [0xC0, 0xAF]),
            ("overlong 3-byte", [0xE0, 0x80, 0xAF]), ("overlong 4-byte", [0xF0, 0x80, 0x80, 0xAF]), ("overlong NUL", [0xC0, 0x80]),
            ("surrogate D800", [0xED, 0xA0, 0x80]), ("surrogate DFFF", [0xED, 0xBF, 0xBF]),
            ("truncated 2-byte", [0xC3]), ("truncated 3-byte", [0xE2, 0x82]), ("truncated 4-byte", [0xF0, 0x9F, 0x98]),
            ("above U+10FFFF", [0xF4, 0x90, 0x80, 0x80]), ("F5", [0xF5, 0x80, 0x80, 0x80]),
        ]
        for (name, bad) in sequences {
            // Inside a string value, inside a key, and at the very end of the record.
            let inValue = Array(#"{"id":"e2","customer":"c1"#.utf8) + bad + Array(#"","timestamp":"2026-11-01T12:00:00Z","cost":1}"#.utf8)
            let inKey = Array(#"{"id":"e2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1,"x"#.utf8) + bad + Array(#"":1}"#.utf8)
            let atEnd = Array(Self.usage(#","cost":1"#).utf8) + bad
            for record in [inValue, inKey, atEnd] { harness.expectRejected(record, .malformed, name) }
        }
    }

    @Test func loneSurrogateEscapesAndControlCharacters() {
        var harness = Harness()
        for escape in [#"\uD800"#, #"\uDC00"#, #"\udbff"#, #"\uD800\u0041"#, #"\uD800x"#, #"\uDC00\uD800"#, #"\uD800\uD800"#] {
            harness.expectRejected(#"{"id":"e2"# + escape + #"","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#, .malformed)
        }
        for control: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            let record = Array(#"{"id":"e"#.utf8) + [control] + Array(#"2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#.utf8)
            harness.expectRejected(record, .malformed, "raw control 0x\(String(control, radix: 16)) in a string")
        }
    }

    @Test func repeatedFieldNames() {
        var harness = Harness()
        for text in [
            Self.usage(#","cost":1,"cost":2"#),
            Self.usage(#","cost":1,"cost":1"#),
            #"{"id":"e2","i\u0064":"e3","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"\u0069d":"e2","id":"e3","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            Self.usage(#","cost":1,"x":null,"x":null"#),
            Self.usage(#","cost":1,"currency":null,"currency":"usd""#),
            Self.usage(#","cost":1,"properties":{"a":1,"b":2,"a":3}"#),
            Self.usage(#","cost":1,"x":[{"k":1,"\u006b":2}]"#),
        ] {
            harness.expectRejected(text, .malformed)
        }
        // The same name in different objects is fine.
        #expect(Self.accepted(Self.usage(#","cost":1,"properties":{"cost":2,"id":{"id":3}}"#)) != nil)
    }

    // MARK: Fields

    @Test func wrongTypes() {
        var harness = Harness()
        let common = #""id":"e2","customer":"c1","timestamp":"2026-11-01T12:00:00Z""#
        var cases: [String] = []
        for (field, values) in [
            ("type", ["5", "true", "[\"usage\"]", "{}"]),
            ("id", ["5", "true", "[\"e2\"]", "{}"]),
            ("customer", ["5", "false", "[\"c1\"]", "{}"]),
            ("timestamp", ["1793534400", "true", "[\"2026-11-01T12:00:00Z\"]", "{}"]),
        ] {
            for value in values {
                var members = [("id", "\"e2\""), ("customer", "\"c1\""), ("timestamp", "\"2026-11-01T12:00:00Z\""), ("cost", "1")]
                if let i = members.firstIndex(where: { $0.0 == field }) { members[i].1 = value } else { members.append((field, value)) }
                cases.append("{" + members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
            }
        }
        for (field, value) in [
            ("meter", "1"), ("meter", "[\"gpu.seconds\"]"), ("quantity", "true"), ("quantity", "{}"), ("quantity", "[1]"),
            ("quantity", "\"abc\""), ("cost", "\"1,5\""), ("cost", "false"), ("currency", "1"), ("currency", "[]"),
            ("properties", "\"model\""), ("properties", "[]"), ("properties", "1"),
        ] {
            let meter = field == "meter" ? "" : #","meter":"gpu.seconds""#
            let quantity = field == "quantity" || field == "cost" ? "" : #","quantity":1"#
            cases.append("{" + common + meter + quantity + ",\"\(field)\":\(value)}")
        }
        for (field, value) in [
            ("amount", "[]"), ("amount", "true"), ("amount", "\"ten\""), ("currency", "5"), ("priority", "\"10\""),
            ("priority", "true"), ("category", "1"), ("effective_at", "1793534400"), ("expires_at", "true"),
            ("meters", "\"llm.tokens\""), ("meters", "[1]"), ("meters", "[\"llm.tokens\",null]"), ("meters", "{}"),
        ] {
            let amount = field == "amount" ? "" : #","amount":"5""#
            cases.append(Self.grant(amount + ",\"\(field)\":\(value)"))
        }
        cases += [
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","grant":1}"#,
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","grant":["g1"]}"#,
            #"{"type":"threshold","id":"t1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","levels":"1"}"#,
            #"{"type":"threshold","id":"t1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","levels":["x"]}"#,
            #"{"type":"threshold","id":"t1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","levels":[true]}"#,
            #"{"type":"threshold","id":"t1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","levels":{}}"#,
        ]
        for text in cases { harness.expectRejected(text, .invalidField) }
    }

    @Test func decimals() {
        var harness = Harness()
        for (value, reason) in [
            ("1e999999999", RejectReason.invalidField), ("\"1e999999999\"", .invalidField), ("1E+999999999999999999999", .invalidField),
            ("1e18", .invalidField), ("1000000000000000000", .invalidField),
            ("1e-999999999", .precision), ("\"1e-999999999\"", .precision), ("1e-10", .precision),
            ("0.0000000001", .precision), ("\"0.0000000001\"", .precision), ("1.0000000000", .precision),
            ("\"1.0000000000\"", .precision), ("12.3456789012", .precision),
            ("\"+1\"", .invalidField), ("\".5\"", .invalidField), ("\"01\"", .invalidField), ("\" 1\"", .invalidField),
            ("\"1 \"", .invalidField), ("\"1.\"", .invalidField), ("\"\"", .invalidField), ("\"-\"", .invalidField),
            ("\"1e\"", .invalidField), ("\"0x10\"", .invalidField), ("\"1_000\"", .invalidField), ("\"١\"", .invalidField),
            ("-1", .invalidField), ("\"-1\"", .invalidField), ("-0.000000001", .invalidField),
        ] {
            harness.expectRejected(Self.usage(#","meter":"gpu.seconds","quantity":"# + value), reason)
            harness.expectRejected(Self.usage(#","cost":"# + value), reason)
        }
        for amount in ["0", "\"0\"", "-5", "0.000000000"] { harness.expectRejected(Self.grant(#","amount":"# + amount), .invalidField) }
        harness.expectRejected(Self.grant(#","amount":"0.0000000001""#), .precision)
        // The valid spellings, exactly.
        for (value, nanos) in [
            ("1.5", 1_500_000_000), ("\"1.5\"", 1_500_000_000), ("15e-1", 1_500_000_000), ("\"0.15E1\"", 1_500_000_000),
            ("1.000000000", 1_000_000_000), ("0.000000001", 1), ("999999999999999999.999999999", 999_999_999_999_999_999_999_999_999),
            ("0e999999999", 0), ("-0", 0), ("1E+2", 100_000_000_000),
        ] as [(String, Int128)] {
            guard case .usage(let usage)? = Self.accepted(Self.usage(#","cost":"# + value))?.body else { continue }
            #expect(usage.cost.nanos == nanos, "cost \(value)")
        }
    }

    @Test func idsAndNames() {
        var harness = Harness()
        let id128 = String(repeating: "i", count: 128)
        let id129 = String(repeating: "i", count: 129)
        let u64 = String(repeating: "ü", count: 64)  // 128 bytes
        #expect(Self.accepted(#"{"id":"\#(id128)","customer":"\#(id128)","timestamp":"2026-11-01T12:00:00Z","cost":1}"#) != nil)
        #expect(Self.accepted(#"{"id":"\#(u64)","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#)?.id == u64)
        let escaped = String(repeating: #"\u00fc"#, count: 64)  // 384 bytes written, 128 decoded
        #expect(Self.accepted(#"{"id":"\#(escaped)","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#)?.id == u64)
        for text in [
            #"{"id":"\#(id129)","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"e2","customer":"\#(id129)","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"\#(u64)a","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"\#(escaped)a","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"e2","customer":"","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","grant":""}"#,
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","grant":"\#(id129)"}"#,
            Self.usage(#","meter":"","quantity":1"#),
            Self.usage(#","cost":1,"currency":"""#),
        ] {
            harness.expectRejected(text, .invalidField)
        }
    }

    @Test func missingFields() {
        var harness = Harness()
        for text in [
            #"{"customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":null,"customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"e2","timestamp":"2026-11-01T12:00:00Z","cost":1}"#,
            #"{"id":"e2","customer":"c1","cost":1}"#,
            #"{"id":"e2","customer":"c1","timestamp":null,"cost":1}"#,
            Self.usage(#","quantity":1"#),
            Self.usage(#","meter":"gpu.seconds""#),
            Self.usage(#","meter":"gpu.seconds","quantity":null"#),
            Self.usage(""),
            Self.grant(""),
            Self.grant(#","amount":null"#),
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z"}"#,
            #"{"type":"threshold","id":"t1","customer":"c1","timestamp":"2026-11-01T12:00:00Z"}"#,
        ] {
            harness.expectRejected(text, .missingField)
        }
    }

    @Test func timestamps() {
        var harness = Harness()
        for time in [
            "2026-11-01T12:00:00", "2026-11-01 12:00:00Z", "2026-02-30T00:00:00Z", "2026-11-01T24:00:00Z", "2026-11-01T23:59:60Z",
            "2026-11-01T12:00:00.1234567890Z", "2026-11-01T12:00:00+2400", "2026-11-01T12:00:00+24:00", "2026-11-01", "",
            "2026-11-01T12:00:00.Z", "26-11-01T12:00:00Z", "2026-13-01T12:00:00Z", " 2026-11-01T12:00:00Z",
            // Valid RFC 3339, outside Int64 nanoseconds (trapped before 2026-12-02).
            "9999-12-31T23:59:59Z", "2263-01-01T00:00:00Z", "1000-01-01T00:00:00Z",
        ] {
            harness.expectRejected(#"{"id":"e2","customer":"c1","timestamp":""# + time + #"","cost":1}"#, .invalidField)
        }
        for time in ["2026-11-01T12:00:00.123456789Z", "2026-11-01t12:00:00z", "2026-11-01T13:00:00+01:00", "2024-02-29T00:00:00-00:00"] {
            #expect(Self.accepted(#"{"id":"e2","customer":"c1","timestamp":""# + time + #"","cost":1}"#) != nil, "\(time)")
        }
    }

    @Test func grantTerms() {
        var harness = Harness()
        for extra in [
            #","amount":5,"priority":100.0"#, #","amount":5,"priority":1001"#, #","amount":5,"priority":-1"#,
            #","amount":5,"priority":1e2"#, #","amount":5,"priority":99999999999999999999999"#,
            #","amount":5,"expires_at":"2026-11-01T12:00:00Z""#,
            #","amount":5,"expires_at":"2026-11-01T11:00:00Z""#,
            #","amount":5,"effective_at":"2026-11-02T00:00:00Z","expires_at":"2026-11-02T00:00:00Z""#,
            #","amount":5,"effective_at":"2026-11-02T01:00:00+01:00","expires_at":"2026-11-02T00:00:00Z""#,
        ] {
            harness.expectRejected(Self.grant(extra), .invalidField)
        }
        for (priority, value) in [("0", 0), ("1000", 1000), ("null", 100)] {
            guard case .grant(let terms)? = Self.accepted(Self.grant(#","amount":5,"priority":"# + priority))?.body else { continue }
            #expect(terms.priority == value)
        }
    }

    @Test func typesMetersAndKeys() {
        var harness = Harness()
        for type in ["refund", "", "Usage", "GRANT", "usage "] {
            harness.expectRejected(#"{"type":""# + type + #"","id":"e2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#, .unknownType)
        }
        harness.expectRejected(Self.usage(#","meter":"no.such.meter","quantity":1"#), .unknownMeter)
        harness.expectRejected(Self.usage(#","meter":"GPU.seconds","quantity":1"#), .unknownMeter)
        var noPrices = MessageDecoder(priceBook: nil)
        if case .failure(let rejection) = noPrices.decode(Self.usage(#","meter":"gpu.seconds","quantity":1"#)) {
            #expect(rejection.reason == .unknownMeter)
        } else {
            Issue.record("usage without cost and without a price book was accepted")
        }
        harness.expectRejected(Self.usage(#","cost":1"#), .keyMismatch, key: "c2")
        harness.expectRejected(Self.usage(#","cost":1"#), .keyMismatch, key: "")
        harness.expectRejected(Self.usage(#","cost":1"#), .keyMismatch, key: "c1 ")
        #expect(Self.accepted(Self.usage(#","cost":1"#), key: "c1") != nil)
        #expect(Self.accepted(#"{"id":"e","customer":"\u00fc","timestamp":"2026-11-01T12:00:00Z","cost":1}"#, key: "ü") != nil)
    }

    // MARK: Rejected by the engine: no state change either

    @Test func engineRejectionsLeaveStateAlone() {
        var harness = Harness()
        harness.expectRejected(
            #"{"type":"void","id":"v1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","grant":"g404"}"#, .unknownGrant)
        harness.expectRejected(
            #"{"type":"void","id":"v1","customer":"c404","timestamp":"2026-11-01T12:00:00Z","grant":"g1"}"#, .unknownGrant)
        harness.expectRejected(#"{"id":"e3","customer":"c1","timestamp":"2026-10-30T11:59:59Z","cost":1}"#, .tooLate)
        harness.expectRejected(
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","meter":"gpu.seconds","quantity":"12.6"}"#, .conflict)
        harness.expectRejected(
            #"{"type":"grant","id":"g1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"101"}"#, .conflict)
        // Exact and reformatted resends are plain duplicates.
        for resend in [
            #"{"id":"e1","customer":"c1","timestamp":"2026-11-01T12:00:00Z","meter":"gpu.seconds","quantity":"12.5"}"#,
            #" { "quantity" : "12.5" , "meter":"gpu.seconds","timestamp":"2026-11-01T12:00:00Z","customer":"c1","id":"e1","currency":null } "#,
            #"{"id":"\u0065\u0031","customer":"c1","timestamp":"2026-11-01T12:00:00Z","meter":"gpu.seconds","quantity":"12.5"}"#,
        ] {
            let before = StateSummary(StateDocument.render([harness.engine]))
            #expect(harness.apply(Array(resend.utf8)) == nil)
            var expected = before
            expected.duplicates += 1
            #expect(StateSummary(StateDocument.render([harness.engine])) == expected, "\(resend)")
        }
    }

    // MARK: Valid corners that must be accepted

    @Test func escapesDecode() {
        let message = Self.accepted(
            #"{"id":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20AC\uD83D\uDE00\ud83d\ude00","customer":"c\u0031","timestamp":"2026-11-01T12:00:00Z","cost":1}"#)
        #expect(message?.id == "a\"b\\c/d\u{8}\u{C}\n\r\tAé€😀😀")
        #expect(message?.customer == "c1")
        // Raw multi-byte UTF-8 passes through.
        #expect(Self.accepted(#"{"id":"€😀ü","customer":"c1","timestamp":"2026-11-01T12:00:00Z","cost":1}"#)?.id == "€😀ü")
        // A `by` property spelled with escapes still selects its price.
        let tokens = Self.accepted(Self.usage(#","meter":"llm.tokens","quantity":1000,"properties":{"mod\u0065l":"l\u0061rge"}"#))
        if case .usage(let usage)? = tokens?.body { #expect(usage.cost == Credits(nanos: 10_000_000)) }
    }

    @Test func extraFieldsOrderWhitespaceAndNulls() {
        let plain = #"{"type":"grant","id":"g2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"5"}"#
        let variants = [
            #"{"amount":"5","timestamp":"2026-11-01T12:00:00Z","customer":"c1","id":"g2","type":"grant"}"#,
            " \t{\r\n\"type\" :\t\"grant\" , \"id\":\"g2\",\"customer\":\"c1\",\"timestamp\":\"2026-11-01T12:00:00Z\",\"amount\":\"5\"}\r\n ",
            #"{"type":"grant","id":"g2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"5","currency":null,"priority":null,"category":null,"effective_at":null,"expires_at":null,"meters":null}"#,
        ]
        guard let base = Self.accepted(plain), case .grant(let baseTerms) = base.body else { return }
        for text in variants {
            guard let message = Self.accepted(text), case .grant(let terms) = message.body else { continue }
            #expect(terms == baseTerms, "\(text)")
            #expect(message.contentHash == base.contentHash, "content hash of \(text)")
        }
        // Unknown extra fields are accepted (and count as content).
        let extra = Self.accepted(
            #"{"type":"grant","id":"g2","customer":"c1","timestamp":"2026-11-01T12:00:00Z","amount":"5","note":{"a":[1,2.5e3,{"b":null}],"c":true},"z":[]}"#)
        #expect(extra != nil)
        #expect(extra?.contentHash != base.contentHash)
        // Null optional usage fields mean absent.
        let usage = Self.accepted(Self.usage(#","cost":1,"meter":null,"quantity":null,"currency":null,"properties":null"#))
        if case .usage(let u)? = usage?.body {
            #expect(u.currency == "credits" && u.meter == nil && u.cost == Credits(units: 1))
        }
        // Defaults of SPEC §1.
        #expect(baseTerms.currency == "credits" && baseTerms.priority == 100 && baseTerms.category == "promotional")
        #expect(baseTerms.effectiveAt == base.timestamp && baseTerms.expiresAt == nil && baseTerms.meters == nil)
    }
}
