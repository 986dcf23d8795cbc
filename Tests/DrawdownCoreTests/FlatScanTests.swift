@testable import DrawdownCore
import Testing

/// `FlatRecordScanner` (the decoder's fast path) against the general path it shortcuts:
/// whenever it accepts a record, the general scanner accepts it too with the same content
/// hash and the same field spans, and the decoder's result is the same either way.
@Suite struct FlatScanTests {
    typealias Generator = SplitMix

    struct Scan: Equatable {
        var hash: UInt64
        var spans: [String]
    }

    static func describe(_ spans: [JSONSpan]) -> [String] {
        spans.map { "\($0.start)..<\($0.end) \($0.kind) \($0.escaped)" }
    }

    static func flat(_ bytes: [UInt8]) -> Scan? {
        var spans = Array(repeating: MessageDecoder.absent, count: MessageDecoder.Field.allCases.count)
        let hash = bytes.withUnsafeBufferPointer { record in
            spans.withUnsafeMutableBufferPointer { spans in
                FlatFieldTable.shared.entries.withUnsafeBufferPointer {
                    FlatRecordScanner.scan(record, spans: spans, table: $0)
                }
            }
        }
        return hash.map { Scan(hash: $0, spans: describe(spans)) }
    }

    /// What the general path sees: nil when the record is not valid UTF-8 or not well-formed.
    static func general(_ bytes: [UInt8]) -> Scan? {
        bytes.withUnsafeBufferPointer { record -> Scan? in
            guard UTF8Validation.isValid(record) else { return nil }
            var spans = Array(repeating: MessageDecoder.absent, count: MessageDecoder.Field.allCases.count)
            var scratch = JSONScratch()
            var scanner = JSONScanner(bytes: record, scratch: &scratch)
            var result: Scan?
            do throws(JSONMalformed) {
                let hash = try scanner.scanRecord { (key, value, scanner) throws(JSONMalformed) in
                    if let field = scanner.withDecoded(key, { MessageDecoder.Field.lookup($0) }) {
                        spans[field.rawValue] = value
                    }
                }
                result = Scan(hash: hash, spans: describe(spans))
            } catch {
                result = nil
            }
            scanner.finish(into: &scratch)
            return result
        }
    }

    /// Both decoders' results, written out in full (every stored property, key hashes included).
    static func decodeBoth(_ bytes: [UInt8], key: [UInt8]? = nil, fast: inout MessageDecoder, slow: inout MessageDecoder)
        -> (String, String)
    {
        func run(_ decoder: inout MessageDecoder) -> String {
            bytes.withUnsafeBufferPointer { record in
                guard let key else { return "\(decoder.decode(record))" }
                return key.withUnsafeBufferPointer { "\(decoder.decode(record, key: $0))" }
            }
        }
        return (run(&fast), run(&slow))
    }

    struct Tally {
        var records = 0
        var flat = 0
        var failures = 0
    }

    /// The differential check on one record; counts it.
    static func check(
        _ bytes: [UInt8], _ tally: inout Tally, fast: inout MessageDecoder, slow: inout MessageDecoder
    ) {
        tally.records += 1
        let flatScan = flat(bytes)
        if let flatScan {
            tally.flat += 1
            let generalScan = general(bytes)
            if generalScan != flatScan {
                tally.failures += 1
                if tally.failures <= 5 {
                    Issue.record("flat \(flatScan) general \(String(describing: generalScan)): \(String(decoding: bytes, as: UTF8.self))")
                }
            }
        }
        let (fastResult, slowResult) = decodeBoth(bytes, fast: &fast, slow: &slow)
        if fastResult != slowResult {
            tally.failures += 1
            if tally.failures <= 5 {
                Issue.record("decoded \(fastResult)\nvs \(slowResult)\n: \(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    static func decoders() -> (MessageDecoder, MessageDecoder) {
        let fast = MessageDecoder(priceBook: Workload.priceBook)
        var slow = MessageDecoder(priceBook: Workload.priceBook)
        slow.usesFlatScan = false
        return (fast, slow)
    }

    /// The benchmark's workload (with its malformed records, resends and reformatted
    /// resends): every record decodes the same both ways, and almost all take the fast path.
    @Test func workloadRecordsDecodeTheSameAndMostlyTakeTheFastPath() {
        var (fast, slow) = Self.decoders()
        var tally = Tally()
        for (bytes, _) in Workload.records(.benchmark(seed: 11, messages: 40_000, customers: 4_000)) {
            Self.check(bytes, &tally, fast: &fast, slow: &slow)
        }
        #expect(tally.failures == 0)
        #expect(tally.records == 40_000)
        // 10 in 10k are malformed on purpose; the rest is what producers write.
        #expect(tally.flat * 1000 >= tally.records * 990, "\(tally.flat) of \(tally.records) took the fast path")
    }

    /// Workload records with one byte replaced, inserted or removed, or cut short: whatever
    /// the fast path accepts, the general path accepts the same way.
    @Test func mutatedRecordsDecodeTheSame() {
        let seed: UInt64 = 23
        var generator = Generator(state: seed)
        var (fast, slow) = Self.decoders()
        var tally = Tally()
        let records = Workload.records(WorkloadSpec(seed: seed, customers: 50, messages: 2_000))
        let significant = Array(#"{}[],:"\ -+.eE0159tfnul"#.utf8) + [0x09, 0x0A, 0x0D, 0x00, 0x01, 0x1F, 0x7F, 0x80, 0xC3, 0xFF]
        for round in 0..<20_000 {
            var bytes = records[round % records.count].bytes
            for _ in 0..<(1 + generator.next(2)) {
                let at = generator.next(bytes.count)
                switch generator.next(4) {
                case 0: bytes[at] = generator.pick(significant)
                case 1: bytes.insert(generator.pick(significant), at: at)
                case 2: bytes.remove(at: at)
                default: bytes.removeLast(bytes.count - at)
                }
                if bytes.isEmpty { bytes = [UInt8(ascii: "{")] }
            }
            Self.check(bytes, &tally, fast: &fast, slow: &slow)
        }
        #expect(tally.failures == 0, "seed \(seed)")
        // Most mutations break the record; some (a digit for a digit) leave it flat and valid.
        #expect(tally.flat > 1_000, "seed \(seed): \(tally.flat) of \(tally.records) took the fast path")
    }

    /// Records, their prefixes and mutations, each in a buffer of exactly its length that
    /// ends at an inaccessible page (as librdkafka's payloads are exactly sized): neither
    /// path reads past the end — the process would fault — and both decode alike, and as
    /// they do from an array.
    @Test func recordsEndingAtAnInaccessiblePageDecodeTheSame() {
        let seed: UInt64 = 47
        var generator = Generator(state: seed)
        var (fast, slow) = Self.decoders()
        let memory = GuardedMemory()
        var failures = 0
        var flat = 0
        let records = Workload.records(WorkloadSpec(seed: seed, customers: 50, messages: 2_000))
        for (round, record) in records.enumerated() {
            var cases = [record.bytes]
            for _ in 0..<4 { cases.append(Array(record.bytes.prefix(generator.next(record.bytes.count + 1)))) }
            var mutated = record.bytes
            mutated[generator.next(mutated.count)] = generator.pick(Array(#"{}[]",:\ 0e.-"#.utf8) + [0x80, 0xC3])
            cases.append(mutated)
            if round < 50 { cases += (0..<record.bytes.count).map { Array(record.bytes.prefix($0)) } }
            for bytes in cases {
                let (guardedFast, guardedSlow) = memory.withGuarded(bytes) { buffer in
                    ("\(fast.decode(buffer))", "\(slow.decode(buffer))")
                }
                if Self.flat(bytes) != nil { flat += 1 }
                let (arrayFast, _) = Self.decodeBoth(bytes, fast: &fast, slow: &slow)
                if guardedFast != guardedSlow || guardedFast != arrayFast {
                    failures += 1
                    if failures <= 5 {
                        Issue.record("seed \(seed): \(guardedFast)\nvs \(guardedSlow)\nvs \(arrayFast)\n: \(String(decoding: bytes, as: UTF8.self))")
                    }
                }
            }
        }
        #expect(failures == 0)
        #expect(flat > 2_000, "\(flat) took the fast path")
    }

    /// Generated records of every shape the grammar allows — whitespace, escapes, non-ASCII,
    /// unknown and repeated names, nulls, nested values, every number form — decode the
    /// same both ways; the flat ones among them take the fast path.
    @Test func generatedRecordsDecodeTheSame() {
        let seed: UInt64 = 31
        var generator = Generator(state: seed)
        var (fast, slow) = Self.decoders()
        var tally = Tally()
        let known = MessageDecoder.Field.allCases.map { "\($0.name)" }
        let unknown = ["x", "note", "ids", "i", "meterx", "Meter", "type2", "effective_a", "expires_at_", "levels_and_more_names"]
        let strings = [
            "usage", "grant", "void", "threshold", "c1", "e1", "g1", "gpu.seconds", "llm.tokens", "api.calls", "model", "large",
            "small", "credits", "usd", "2026-11-01T12:00:00Z", "2026-11-01T13:00:00+01:00", "", "10", "1.5", "-2", "0.0000000001",
            "a\\\"b", "\\u0063\\u0031", "caf\u{e9}", "\u{1F600}", "tab\\t", "x/y", "1e3",
        ]
        let numbers = ["0", "-0", "1", "12.5", "1.50", "15e-1", "1E+2", "0.000000001", "0.0000000001", "100", "1000", "1001", "-3",
            "123456789012345678", "1e400", "2207.0", "7", "0.1e1"]
        let typed: [String: [String]] = [
            "type": [#""usage""#, #""usage""#, #""grant""#, #""void""#, #""threshold""#],
            "meter": [#""gpu.seconds""#, #""llm.tokens""#, #""api.calls""#, "\"caf\u{e9}\""],
            "quantity": ["12.5", #""3""#, "1e2", "0", "2207.0"], "cost": ["1.5", #""0.25""#, "0"],
            "amount": ["10", #""30.2880""#, "1E1"], "currency": [#""credits""#, #""usd""#],
            "properties": [#"{"model":"large"}"#, #"{"model": "small", "sku":"std"}"#, "{}", #"{"model":null}"#],
            "priority": ["0", "10", "1000", "1001"], "category": [#""paid""#],
            "effective_at": [#""2026-11-01T11:00:00Z""#], "expires_at": [#""2026-11-02T12:00:00+02:00""#],
            "meters": [#"["gpu.seconds"]"#, "[]", #"[ "llm.tokens" , "api.calls" ]"#], "grant": [#""g1""#],
            "levels": [#"["1.5", 2]"#, "[10]"],
        ]
        var flatValid = 0
        func space() -> String { generator.next(6) == 0 ? generator.pick([" ", "\n", "\t", "\r\n  "]) : "" }
        func scalar() -> String {
            switch generator.next(6) {
            case 0, 1, 2: return "\"" + generator.pick(strings) + "\""
            case 3, 4: return generator.pick(numbers)
            default: return generator.pick(["true", "false", "null"])
            }
        }
        func value(depth: Int) -> String {
            switch generator.next(10) {
            case 0 where depth < 3:
                let members = (0..<generator.next(4)).map { _ in
                    space() + "\"" + generator.pick(["model", "sku", "a", "b", "k\\u0031"]) + "\"" + space() + ":" + space() + value(depth: depth + 1)
                }
                return "{" + members.joined(separator: ",") + space() + "}"
            case 1 where depth < 3:
                return "[" + (0..<generator.next(4)).map { _ in space() + value(depth: depth + 1) + space() }.joined(separator: ",") + "]"
            default:
                return scalar()
            }
        }
        for _ in 0..<30_000 {
            var names = ["id", "customer", "timestamp"]
            for _ in 0..<generator.next(8) { names.append(generator.next(4) == 0 ? generator.pick(unknown) : generator.pick(known)) }
            names.shuffle(using: &generator)
            let members = names.map { name -> String in
                let written = name == "id" && generator.next(20) == 0 ? "i\\u0064" : name
                let member: String
                switch name {
                case "id", "customer": member = "\"" + (generator.next(10) == 0 ? generator.pick(strings) : "c1") + "\""
                case "timestamp": member = generator.next(10) == 0 ? scalar() : "\"2026-11-01T12:00:00Z\""
                default:
                    // Mostly a value of the field's own type, so that many records decode.
                    if generator.next(4) > 0, let choices = typed[name] { member = generator.pick(choices) } else { member = value(depth: 1) }
                }
                return space() + "\"" + written + "\"" + space() + ":" + space() + member + space()
            }
            let text = space() + "{" + members.joined(separator: ",") + "}" + space()
            let bytes = Array(text.utf8)
            let before = tally.flat
            Self.check(bytes, &tally, fast: &fast, slow: &slow)
            if tally.flat > before, case .success = fast.decode(text) { flatValid += 1 }
        }
        #expect(tally.failures == 0, "seed \(seed)")
        #expect(tally.flat > 3_000, "seed \(seed): \(tally.flat) of \(tally.records) took the fast path")
        #expect(flatValid > 500, "seed \(seed): \(flatValid) decoded through the fast path")
    }

    /// Every known name is found, near misses of every length are not, and names near the
    /// end of a short record (where the words are read byte by byte) are compared right.
    @Test func fieldTableMatchesNamesExactly() {
        let table = FlatFieldTable.shared.entries
        for field in MessageDecoder.Field.allCases {
            let name = "\(field.name)"
            for padding in [0, 1, 16] {
                let record = Array(("\"" + name + "\"" + String(repeating: " ", count: padding)).utf8)
                var hash: UInt64 = 0
                let found = record.withUnsafeBufferPointer { bytes in
                    table.withUnsafeBufferPointer {
                        FlatFieldTable.field($0, base: bytes.baseAddress!, count: bytes.count, start: 1, end: 1 + name.utf8.count, hash: &hash)
                    }
                }
                #expect(found == field.rawValue, "\(name) padding \(padding)")
                #expect(hash == StableHash.hash(name, seed: JSONScanner.stringSeed), "\(name) padding \(padding)")
            }
        }
        var (fast, slow) = Self.decoders()
        var tally = Tally()
        for name in ["id", "i", "d", "ix", "idx", "type", "typo", "typ", "types", "meters", "meterz", "meter", "metersx",
            "effective_at", "effective_aX", "expires_at", "expires_aT", "levels", "level", "grant", "grants", "Grant"]
        {
            for value in ["1", "\"g\"", "[\"m\"]"] {
                let short = Array(("{\"" + name + "\":" + value + "}").utf8)
                let long = Array(("{\"id\":\"e\",\"customer\":\"c\",\"" + name + "\":" + value + ",\"timestamp\":\"2026-11-01T12:00:00Z\"}").utf8)
                Self.check(short, &tally, fast: &fast, slow: &slow)
                // (In the long record, `id`, `customer` and `timestamp` would be repeated names.)
                if !["id", "customer", "timestamp"].contains(name) { Self.check(long, &tally, fast: &fast, slow: &slow) }
            }
        }
        #expect(tally.failures == 0)
        #expect(tally.flat == tally.records)
    }
}
