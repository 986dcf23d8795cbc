@testable import DrawdownCore
import Testing

/// The decoder rates usage through `RatingTable` (lookups by the bytes of a name). These
/// tests hold it to a reference that rates from the `PriceBook`'s dictionaries as SPEC
/// section 2 reads: the meter is `book.meters[meter]` (`String` equality), its price
/// `prices[properties[by]]` when that property is a string with an entry, else `unit_price`.
@Suite struct RatingTableTests {
    typealias Generator = SplitMix

    /// Meter names and choices: plain ASCII, JSON-special, and non-ASCII names of which some
    /// are canonically equivalent to others (`String` equality): U+212A KELVIN SIGN is "K",
    /// "e\u{301}" is "é".
    static let asciiNames = ["tokens", "gpu.seconds", "K", "k", "api calls", "a/b", "large", "small"]
    static let otherNames = ["\u{212A}", "é", "e\u{301}", "modèle", "日本", "Å", "\u{212B}"]
    static let propertyNames = ["model", "region", "modèle", "mode\u{300}le"]

    /// A random book; `ascii` keeps every meter name ASCII (so the table lays it out).
    static func book(_ generator: inout Generator, ascii: Bool) -> PriceBook {
        var meters: [String: PriceBook.MeterPrice] = [:]
        let names = ascii ? asciiNames : asciiNames + otherNames
        for _ in 0..<(1 + generator.next(6)) {
            var price = PriceBook.MeterPrice(
                unitPrice: Credits(nanos: Int128(generator.next(5_000_000))),
                currency: generator.next(3) == 0 ? generator.pick(["usd", "credits", "eur"]) : nil)
            if generator.next(2) == 0 {
                price.by = generator.pick(propertyNames)
                let choices = generator.next(2) == 0 ? asciiNames : asciiNames + otherNames
                for _ in 0..<generator.next(5) {
                    price.prices[generator.pick(choices)] = Credits(nanos: Int128(generator.next(9_000_000)))
                }
            }
            meters[generator.pick(names)] = price
        }
        return PriceBook(meters: meters)
    }

    /// A JSON string literal of `text`, each scalar written plainly or (sometimes) as `\u`.
    static func literal(_ text: String, _ generator: inout Generator) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            if generator.next(5) == 0 || scalar == "\"" || scalar == "\\" {
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Whitespace, sometimes (the flat path's byte scan of `properties` must skip it).
    static func space(_ generator: inout Generator) -> String {
        generator.next(4) == 0 ? generator.pick([" ", "\n", "\t ", "\r\n"]) : ""
    }

    /// A usage record against `book`, with the values a reference needs.
    struct Record {
        var text: String
        var meter: String
        var quantity: Int
        /// The properties as (name, value) with value nil for a non-string value.
        var properties: [(String, String?)]
    }

    static func record(_ n: Int, _ book: PriceBook, _ generator: inout Generator) -> Record {
        let known = book.meters.keys.sorted()
        let meter = generator.next(4) == 0 ? generator.pick(asciiNames + otherNames) : generator.pick(known)
        let quantity = generator.next(100_000)
        var props: [(String, String?)] = []
        var members: [String] = []
        // At most one property per name, so no record repeats a name.
        for name in Self.properties(for: book.meters[meter], generator: &generator) {
            switch generator.next(4) {
            case 0:
                props.append((name, nil))
                members.append(literal(name, &generator) + space(&generator) + ":" + space(&generator) + generator.pick(["7", "true", "null", "1.5"]))
            default:
                let value = generator.pick(asciiNames + otherNames)
                props.append((name, value))
                members.append(literal(name, &generator) + space(&generator) + ":" + space(&generator) + literal(value, &generator))
            }
        }
        var text = #"{"type":"usage","id":"e\#(n)","customer":"c\#(n % 7)","timestamp":"2026-01-01T00:00:00Z","#
        text += #""meter":\#(literal(meter, &generator)),"quantity":\#(quantity)"#
        if !members.isEmpty || generator.next(3) == 0 { text += #","properties":{"# + space(&generator) + members.joined(separator: space(&generator) + "," + space(&generator)) + space(&generator) + "}" }
        return Record(text: text + "}", meter: meter, quantity: quantity, properties: props)
    }

    /// Property names for a record: the meter's `by` (most of the time) and others.
    static func properties(for price: PriceBook.MeterPrice?, generator: inout Generator) -> [String] {
        var names: [String] = []
        if let by = price?.by, generator.next(5) != 0 { names.append(by) }
        for name in propertyNames where generator.next(4) == 0 && !names.contains(where: { $0 == name }) {
            names.append(name)
        }
        // Shuffle, so `by` is not always first.
        for i in names.indices.reversed() where i > 0 { names.swapAt(i, generator.next(i + 1)) }
        return names
    }

    /// The reference: the rated usage (cost, currency, the meter's bytes) or the reason.
    static func reference(_ record: Record, _ book: PriceBook) -> String {
        guard let price = book.meters[record.meter] else { return "reject unknown_meter" }
        var unitPrice = price.unitPrice
        // Property names match by their bytes, as the decoder's scanner compares them.
        if let by = price.by, let (_, value) = record.properties.first(where: { Array($0.0.utf8) == Array(by.utf8) }),
            let value, let choice = price.prices[value]
        {
            unitPrice = choice
        }
        let cost = Credits.rated(quantity: Credits(units: record.quantity), unitPrice: unitPrice)!
        return "usage \(cost.nanos) \(price.currency ?? "credits") \(Array(record.meter.utf8))"
    }

    static func decoded(_ record: Record, _ decoder: inout MessageDecoder) -> String {
        switch decoder.decode(record.text) {
        case .failure(let rejection): return "reject \(rejection.reason.rawValue)"
        case .success(let message):
            guard case .usage(let usage) = message.body else { return "not usage" }
            return "usage \(usage.cost.nanos) \(usage.currency) \(Array((usage.meter ?? "").utf8))"
        }
    }

    @Test(arguments: [false, true])
    func ratesAsTheBooksDictionariesDo(ascii: Bool) {
        let seed: UInt64 = ascii ? 31 : 37
        var generator = Generator(state: seed)
        var failures = 0
        var rated = 0
        var byChoice = 0
        for _ in 0..<300 {
            let book = Self.book(&generator, ascii: ascii)
            var fast = MessageDecoder(priceBook: book)
            var slow = MessageDecoder(priceBook: book)
            slow.usesFlatScan = false
            for n in 0..<100 {
                let record = Self.record(n, book, &generator)
                let expected = Self.reference(record, book)
                if expected.hasPrefix("usage") { rated += 1 }
                if let price = book.meters[record.meter], let by = price.by,
                    let (_, value) = record.properties.first(where: { Array($0.0.utf8) == Array(by.utf8) }),
                    let value, price.prices[value] != nil
                {
                    byChoice += 1
                }
                for (path, result) in [("flat", Self.decoded(record, &fast)), ("general", Self.decoded(record, &slow))]
                where result != expected {
                    failures += 1
                    if failures <= 5 {
                        Issue.record("seed \(seed) \(path): \(result) expected \(expected)\n\(record.text)\nbook \(book.meters)")
                    }
                }
            }
        }
        #expect(failures == 0)
        // The generator reaches every case: rated, rejected, and priced by a choice.
        #expect(rated > 15_000 && rated < 29_000, "\(rated) of 30000 rated")
        #expect(byChoice > 1_000, "\(byChoice) priced by a choice")
    }

    /// A book whose only meter is "K" rates usage named with the Kelvin sign, as `String`
    /// equality has it, and keeps the record's spelling of the meter.
    @Test func kelvinSignFindsTheASCIIMeter() throws {
        let book = PriceBook(meters: ["K": .init(unitPrice: Credits(units: 2), by: "model", prices: ["\u{212B}": Credits(units: 3)])])
        var decoder = MessageDecoder(priceBook: book)
        let base = #"{"type":"usage","id":"e","customer":"c","timestamp":"2026-01-01T00:00:00Z","quantity":5,"#
        for (meter, model, cost) in [("K", "x", 10), ("\u{212A}", "x", 10), ("\\u212a", "Å", 15), ("K", "\\u212b", 15)] {
            let result = decoder.decode(base + #""meter":"\#(meter)","properties":{"model":"\#(model)"}}"#)
            guard case .success(let message) = result, case .usage(let usage) = message.body else {
                Issue.record("\(meter) \(model): \(result)")
                continue
            }
            #expect(usage.cost == Credits(units: cost), "\(meter) \(model)")
            #expect(usage.meter.map { Array($0.utf8) } == Array((meter.utf8.elementsEqual("K".utf8) ? "K" : "\u{212A}").utf8))
        }
        let unknown = decoder.decode(base + #""meter":"k"}"#)
        #expect((try? unknown.get()) == nil)
        if case .failure(let rejection) = unknown { #expect(rejection.reason == .unknownMeter) }
    }
}
