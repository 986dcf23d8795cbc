/// Prices per meter (SPEC §2).
public struct PriceBook: Sendable {
    public struct MeterPrice: Sendable, Equatable {
        public var unitPrice: Credits
        /// The meter's currency; usage without its own `currency` uses it, else `credits`.
        public var currency: String?
        /// A property whose string value selects an entry of `prices`.
        public var by: String?
        public var prices: [String: Credits]

        public init(unitPrice: Credits, currency: String? = nil, by: String? = nil, prices: [String: Credits] = [:]) {
            self.unitPrice = unitPrice
            self.currency = currency
            self.by = by
            self.prices = prices
        }
    }

    public var meters: [String: MeterPrice]

    public init(meters: [String: MeterPrice] = [:]) { self.meters = meters }

    /// An error in a price book file, naming the place.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Reads `{"meters": {"name": {"unit_price": "0.01", "currency": "usd", "by": "model", "prices": {...}}}}`.
    /// Prices are decimals (numbers or decimal strings) ≥ 0 with at most 9 fractional digits.
    public static func parse(_ bytes: [UInt8]) throws(Invalid) -> PriceBook {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw Invalid(description: "price book is not valid JSON: \(error.detail) at byte \(error.offset)")
        }
        guard case .object(let root)? = Optional(document), case .object(let meters)? = root["meters"] else {
            throw Invalid(description: "price book must be an object with a \"meters\" object")
        }
        var book = PriceBook()
        for (name, entry) in meters {
            guard case .object(let fields) = entry else { throw Invalid(description: "meters.\(name) must be an object") }
            guard let unitPriceValue = fields["unit_price"] else {
                throw Invalid(description: "meters.\(name).unit_price is missing")
            }
            var price = MeterPrice(unitPrice: try decimal(unitPriceValue, at: "meters.\(name).unit_price"))
            switch fields["currency"] {
            case nil, .null?: break
            case .string(let currency)? where !currency.isEmpty: price.currency = currency
            default: throw Invalid(description: "meters.\(name).currency must be a non-empty string")
            }
            switch fields["by"] {
            case nil, .null?: break
            case .string(let property)?: price.by = property
            default: throw Invalid(description: "meters.\(name).by must be a string")
            }
            switch fields["prices"] {
            case nil, .null?: break
            case .object(let entries)?:
                for (key, value) in entries {
                    price.prices[key] = try decimal(value, at: "meters.\(name).prices.\(key)")
                }
            default: throw Invalid(description: "meters.\(name).prices must be an object")
            }
            book.meters[name] = price
        }
        return book
    }

    private static func decimal(_ value: JSONValue, at path: String) throws(Invalid) -> Credits {
        let text: String
        switch value {
        case .number(let n): text = n
        case .string(let s): text = s
        default: throw Invalid(description: "\(path) must be a decimal")
        }
        switch DecimalParser.parse(text) {
        case .success(let credits) where !credits.isNegative: return credits
        case .success: throw Invalid(description: "\(path) must not be negative")
        case .failure(.precision): throw Invalid(description: "\(path) has more than 9 fractional digits")
        case .failure(.outOfRange): throw Invalid(description: "\(path) is 10^18 or more")
        case .failure(.syntax): throw Invalid(description: "\(path) is not a decimal: \(text)")
        }
    }
}

/// A price book's meters keyed by their UTF-8 bytes, for the decoder: one stable hash and a
/// byte compare per lookup, and the `by` choice found on the record's bytes, instead of
/// building `String`s for `Dictionary` lookups (SipHash). Built only when every meter name
/// and choice key is ASCII, and only used for ASCII input: for ASCII, byte equality is what
/// `String` equality (canonical equivalence) gives; anything else takes the `Dictionary`
/// path, so lookups find exactly what they found before.
struct MeterTable: Sendable {
    struct Entry: Sendable {
        var name: [UInt8]
        var price: PriceBook.MeterPrice
        var choices: [(key: [UInt8], price: Credits)]
    }

    private(set) var entries: [Entry] = []
    private var index = HashIndex(capacity: 16)
    static let seed: UInt64 = 0x6d65_7465_7273

    init?(_ book: PriceBook?) {
        guard let book else { return nil }
        for (name, price) in book.meters {
            guard MeterTable.isASCII(name), price.prices.keys.allSatisfy(MeterTable.isASCII) else { return nil }
            index.insert(StableHash.hash(name, seed: MeterTable.seed), Int32(entries.count))
            entries.append(Entry(name: Array(name.utf8), price: price, choices: price.prices.map { (Array($0.key.utf8), $0.value) }))
        }
    }

    static func isASCII(_ text: String) -> Bool { text.utf8.allSatisfy { $0 < 0x80 } }

    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { bytes.allSatisfy { $0 < 0x80 } }

    static func same(_ a: [UInt8], _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { a in (0..<b.count).allSatisfy { a[$0] == b[$0] } }
    }

    /// The entry number of an ASCII meter name.
    func find(_ name: UnsafeBufferPointer<UInt8>) -> Int? {
        index.find(StableHash.hash(name, seed: MeterTable.seed)) { MeterTable.same(entries[Int($0)].name, name) }.map { Int($0) }
    }

    /// The price of an ASCII choice of entry `entry`.
    func choice(_ key: UnsafeBufferPointer<UInt8>, in entry: Int) -> Credits? {
        for choice in entries[entry].choices where MeterTable.same(choice.key, key) { return choice.price }
        return nil
    }
}
