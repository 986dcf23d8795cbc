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
