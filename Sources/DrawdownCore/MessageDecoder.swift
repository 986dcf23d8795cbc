/// Turns one record's bytes into a validated, rated `Message`, or a `Rejection` with the
/// reason of SPEC §4. Allocation-free for ordinary usage events (short ids live inline in
/// `String`), and never uses Foundation.
///
/// Checks run in this order: size (`too_large`), UTF-8 and JSON grammar (`malformed`),
/// `type`, the common fields, the Kafka key (`key_mismatch`), the type's own fields, then
/// rating (`unknown_meter`). Records of the common shape (flat, no escapes) are scanned by
/// `FlatRecordScanner` instead, which gives the same hash and spans in one pass and checks
/// UTF-8 only when a record has bytes ≥ 0x80; the rest take the general path.
public struct MessageDecoder: Sendable {
    public var priceBook: PriceBook? { didSet { rating = RatingTable(priceBook) } }
    /// `priceBook` laid out for lookups by the bytes of a name.
    private var rating: RatingTable
    private var scratch = JSONScratch()
    private var spans: [JSONSpan]
    private let fieldTable = FlatFieldTable.shared.entries
    /// Whether records of the common shape take `FlatRecordScanner` (tests turn it off to
    /// compare with the general path).
    var usesFlatScan = true

    static let absent = JSONSpan(start: -1, end: -1, kind: .null, escaped: false)

    public init(priceBook: PriceBook?) {
        self.priceBook = priceBook
        self.rating = RatingTable(priceBook)
        self.spans = Array(repeating: MessageDecoder.absent, count: Field.allCases.count)
    }

    /// The top-level fields the contract knows; any other field is accepted and ignored
    /// (but counts in the content hash).
    enum Field: Int, CaseIterable {
        case type, id, customer, timestamp, meter, quantity, cost, currency, properties
        case amount, priority, category, effectiveAt, expiresAt, meters, grant, levels

        var name: StaticString {
            switch self {
            case .type: "type"
            case .id: "id"
            case .customer: "customer"
            case .timestamp: "timestamp"
            case .meter: "meter"
            case .quantity: "quantity"
            case .cost: "cost"
            case .currency: "currency"
            case .properties: "properties"
            case .amount: "amount"
            case .priority: "priority"
            case .category: "category"
            case .effectiveAt: "effective_at"
            case .expiresAt: "expires_at"
            case .meters: "meters"
            case .grant: "grant"
            case .levels: "levels"
            }
        }

        /// Matches a decoded key without allocating: first byte, then the full name.
        static func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Field? {
            guard key.count >= 2, key.count <= 12 else { return nil }
            @inline(__always) func match(_ field: Field) -> Field? { equal(key, field.name) ? field : nil }
            switch key[0] {
            case UInt8(ascii: "t"): return match(.type) ?? match(.timestamp)
            case UInt8(ascii: "i"): return match(.id)
            case UInt8(ascii: "c"): return match(.customer) ?? match(.cost) ?? match(.currency) ?? match(.category)
            case UInt8(ascii: "m"): return match(.meter) ?? match(.meters)
            case UInt8(ascii: "q"): return match(.quantity)
            case UInt8(ascii: "p"): return match(.properties) ?? match(.priority)
            case UInt8(ascii: "a"): return match(.amount)
            case UInt8(ascii: "e"): return match(.effectiveAt) ?? match(.expiresAt)
            case UInt8(ascii: "g"): return match(.grant)
            case UInt8(ascii: "l"): return match(.levels)
            default: return nil
            }
        }
    }

    /// Decodes one record. `key` is the Kafka record key, when there is one.
    public mutating func decode(
        _ record: UnsafeBufferPointer<UInt8>, key: UnsafeBufferPointer<UInt8>? = nil
    ) -> Result<Message, Rejection> {
        guard record.count <= MessageLimits.recordBytesMax else {
            return .failure(Rejection(.tooLarge, "record of \(record.count) bytes is over \(MessageLimits.recordBytesMax)"))
        }
        for i in spans.indices { spans[i] = MessageDecoder.absent }
        if usesFlatScan, let hash = flatScan(record) {
            var scanner = JSONScanner(bytes: record, scratch: &scratch)
            let result = interpret(&scanner, contentHash: hash, key: key, flat: true)
            scanner.finish(into: &scratch)
            return result
        }
        return decodeGeneral(record, key: key)
    }

    /// The fast path's scan (`FlatRecordScanner`): the content hash with `spans` filled, or nil.
    private mutating func flatScan(_ record: UnsafeBufferPointer<UInt8>) -> UInt64? {
        let table = fieldTable
        return spans.withUnsafeMutableBufferPointer { spans in
            table.withUnsafeBufferPointer { FlatRecordScanner.scan(record, spans: spans, table: $0) }
        }
    }

    /// The general path: UTF-8 validation, then `JSONScanner` over any JSON.
    private mutating func decodeGeneral(
        _ record: UnsafeBufferPointer<UInt8>, key: UnsafeBufferPointer<UInt8>?
    ) -> Result<Message, Rejection> {
        guard UTF8Validation.isValid(record) else { return .failure(Rejection(.malformed, "invalid UTF-8")) }
        for i in spans.indices { spans[i] = MessageDecoder.absent }
        var scanner = JSONScanner(bytes: record, scratch: &scratch)
        let result: Result<Message, Rejection>
        var found: [JSONSpan] = []
        swap(&found, &spans)
        do throws(JSONMalformed) {
            let hash = try scanner.scanRecord { (keySpan, value, scanner) throws(JSONMalformed) in
                let field = scanner.withDecoded(keySpan) { Field.lookup($0) }
                if let field { found[field.rawValue] = value }
            }
            swap(&found, &spans)
            result = interpret(&scanner, contentHash: hash, key: key, flat: false)
        } catch {
            swap(&found, &spans)
            result = .failure(Rejection(.malformed, "\(error.detail) at byte \(error.offset)"))
        }
        scanner.finish(into: &scratch)
        return result
    }

    /// Convenience for tests and tools.
    public mutating func decode(_ record: String, key: String? = nil) -> Result<Message, Rejection> {
        var recordCopy = record
        return recordCopy.withUTF8 { recordBytes in
            guard var keyCopy = key else { return decode(recordBytes, key: nil) }
            return keyCopy.withUTF8 { decode(recordBytes, key: $0) }
        }
    }

    // MARK: Interpretation

    @inline(__always)
    private func span(_ field: Field) -> JSONSpan? {
        let span = spans[field.rawValue]
        return span.start < 0 || span.kind == .null ? nil : span
    }

    /// `flat`: the record was scanned by `FlatRecordScanner` (so it has no escapes and its
    /// objects are flat).
    private func interpret(_ scanner: inout JSONScanner, contentHash: UInt64, key: UnsafeBufferPointer<UInt8>?, flat: Bool)
        -> Result<Message, Rejection>
    {
        do {
            // type
            var type = MessageType.usage
            if let typeSpan = span(.type) {
                guard typeSpan.kind == .string else { throw Rejection(.invalidField, "type must be a string") }
                // Matched on the bytes: no String unless the type is unknown.
                guard let known = scanner.withDecoded(typeSpan, { MessageDecoder.messageType($0) }) else {
                    throw Rejection(.unknownType, "unknown type \"\(scanner.decodedString(typeSpan))\"")
                }
                type = known
            }
            // common fields
            let id = try requiredName(.id, &scanner, limit: MessageLimits.idBytesMax)
            let customer = try requiredName(.customer, &scanner, limit: MessageLimits.idBytesMax)
            guard let timestampSpan = span(.timestamp) else { throw Rejection(.missingField, "timestamp is required") }
            let timestamp = try eventTime(timestampSpan, .timestamp, &scanner)
            if let key, !equal(key, customer) {
                throw Rejection(.keyMismatch, "record key does not match customer")
            }
            let body: Message.Body
            switch type {
            case .usage: body = .usage(try usage(&scanner, flat: flat))
            case .grant: body = .grant(try grant(&scanner, timestamp: timestamp))
            case .void: body = .void(grant: try requiredName(.grant, &scanner, limit: MessageLimits.idBytesMax))
            case .threshold: body = .threshold(try threshold(&scanner))
            }
            var message = Message(id: id, customer: customer, timestamp: timestamp, contentHash: contentHash, body: body)
            message.keyHashes = keyHashes(&scanner)
            return .success(message)
        } catch let rejection as Rejection {
            return .failure(rejection)
        } catch {
            return .failure(Rejection(.malformed, "\(error)"))
        }
    }

    /// `MessageType(rawValue:)` on decoded bytes.
    static func messageType(_ name: UnsafeBufferPointer<UInt8>) -> MessageType? {
        let usage: StaticString = "usage", grant: StaticString = "grant", void: StaticString = "void"
        let threshold: StaticString = "threshold"
        if equal(name, usage) { return .usage }
        if equal(name, grant) { return .grant }
        if equal(name, void) { return .void }
        if equal(name, threshold) { return .threshold }
        return nil
    }

    /// Customer hash and fingerprint from the record's bytes (customer and id were validated).
    private func keyHashes(_ scanner: inout JSONScanner) -> KeyHashes {
        let customerSpan = spans[Field.customer.rawValue]
        let idSpan = spans[Field.id.rawValue]
        if customerSpan.escaped || idSpan.escaped {
            return KeyHashes(customer: scanner.decodedString(customerSpan), id: scanner.decodedString(idSpan))
        }
        let bytes = scanner.bytes
        return KeyHashes(
            customer: UnsafeBufferPointer(rebasing: bytes[customerSpan.start..<customerSpan.end]),
            id: UnsafeBufferPointer(rebasing: bytes[idSpan.start..<idSpan.end]))
    }

    private func usage(_ scanner: inout JSONScanner, flat: Bool) throws -> Usage {
        let meterSpan = try nameSpan(.meter, &scanner)
        let quantity = try optionalDecimal(.quantity, &scanner)
        if let quantity, quantity.isNegative { throw Rejection(.invalidField, "quantity must not be negative") }
        let givenCost = try optionalDecimal(.cost, &scanner)
        if let givenCost, givenCost.isNegative { throw Rejection(.invalidField, "cost must not be negative") }
        let givenCurrency = try optionalName(.currency, &scanner)
        if let properties = span(.properties), properties.kind != .object {
            throw Rejection(.invalidField, "properties must be an object")
        }
        // The meter's name and price: from the rating table by the name's bytes when it can
        // answer, else from the book's dictionary. A meter the table found is read in place
        // through its index: copying its `MeterPrice` out would retain and release the book's
        // strings and dictionary (+42 instructions a record).
        var meter: String?
        var tableIndex: Int?
        var bookPrice: PriceBook.MeterPrice?
        if let meterSpan {
            switch scanner.withDecoded(meterSpan, { rating.meter($0) }) {
            case .found(let index):
                tableIndex = index
                meter = rating.meters[index].name
            case .absent:
                meter = scanner.decodedString(meterSpan)
            case .dictionary:
                let name = scanner.decodedString(meterSpan)
                meter = name
                bookPrice = priceBook?.meters[name]
            }
        }
        let meterCurrency = tableIndex.map { rating.meters[$0].price.currency } ?? bookPrice?.currency
        let currency = givenCurrency ?? meterCurrency ?? "credits"
        if let givenCost { return Usage(cost: givenCost, currency: currency, meter: meter) }
        guard let meter else { throw Rejection(.missingField, "meter is required unless cost is given") }
        guard let quantity else { throw Rejection(.missingField, "quantity is required unless cost is given") }
        let unitPrice: Credits
        if let tableIndex {
            unitPrice = choicePrice(tableIndex, &scanner, flat: flat) ?? rating.meters[tableIndex].price.unitPrice
        } else if let bookPrice {
            unitPrice = bookChoicePrice(bookPrice, &scanner) ?? bookPrice.unitPrice
        } else {
            throw Rejection(.unknownMeter, priceBook == nil ? "no price book: usage must carry cost" : "unknown meter \"\(meter)\"")
        }
        guard let cost = Credits.rated(quantity: quantity, unitPrice: unitPrice), cost.nanos < Credits.nanosLimit else {
            throw Rejection(.invalidField, "cost of quantity × price is 10^18 or more")
        }
        return Usage(cost: cost, currency: currency, meter: meter)
    }

    /// The price of the choice the event's `by` property makes, for a meter of the table.
    private func choicePrice(_ index: Int, _ scanner: inout JSONScanner, flat: Bool) -> Credits? {
        guard let by = rating.meters[index].by, let properties = span(.properties) else { return nil }
        guard flat, rating.meters[index].choices != nil else { return bookChoicePrice(rating.meters[index].price, &scanner) }
        guard let value = FlatRecordScanner.stringMember(scanner.bytes, of: properties, named: by) else { return nil }
        let bytes = UnsafeBufferPointer(rebasing: scanner.bytes[value])
        switch rating.meters[index].choices?.lookup(bytes) ?? .dictionary {
        case .found(let choice): return rating.meters[index].choicePrices[choice]
        case .absent: return nil
        case .dictionary: return rating.meters[index].price.prices[String(decoding: bytes, as: UTF8.self)]
        }
    }

    /// The same from the book's dictionaries.
    private func bookChoicePrice(_ price: PriceBook.MeterPrice, _ scanner: inout JSONScanner) -> Credits? {
        guard let by = price.by, let properties = span(.properties),
            let choice = scanner.stringMember(of: properties, named: by)
        else { return nil }
        return price.prices[choice]
    }

    private func grant(_ scanner: inout JSONScanner, timestamp: EventTime) throws -> GrantTerms {
        guard let amount = try optionalDecimal(.amount, &scanner) else { throw Rejection(.missingField, "amount is required") }
        guard amount.isPositive else { throw Rejection(.invalidField, "amount must be greater than 0") }
        var terms = GrantTerms(amount: amount, effectiveAt: timestamp)
        if let currency = try optionalName(.currency, &scanner) { terms.currency = currency }
        if let prioritySpan = span(.priority) {
            // An integer as written: `100.0` and `1e2` are not integers.
            var priority = 0
            var valid = prioritySpan.kind == .number
            if valid {
                for i in prioritySpan.start..<prioritySpan.end {
                    let digit = scanner.bytes[i] &- UInt8(ascii: "0")
                    guard digit < 10, priority <= MessageLimits.priorityMax else {
                        valid = false
                        break
                    }
                    priority = priority * 10 + Int(digit)
                }
            }
            guard valid, priority <= MessageLimits.priorityMax else {
                throw Rejection(.invalidField, "priority must be an integer from 0 to \(MessageLimits.priorityMax)")
            }
            terms.priority = priority
        }
        if let categorySpan = span(.category) {
            guard categorySpan.kind == .string else { throw Rejection(.invalidField, "category must be a string") }
            terms.category = scanner.decodedString(categorySpan)
        }
        if let effectiveSpan = span(.effectiveAt) { terms.effectiveAt = try eventTime(effectiveSpan, .effectiveAt, &scanner) }
        if let expiresSpan = span(.expiresAt) {
            let expiresAt = try eventTime(expiresSpan, .expiresAt, &scanner)
            guard expiresAt > terms.effectiveAt else { throw Rejection(.invalidField, "expires_at must be after effective_at") }
            terms.expiresAt = expiresAt
        }
        if let metersSpan = span(.meters) {
            guard metersSpan.kind == .array else { throw Rejection(.invalidField, "meters must be an array of meter names") }
            var names: [String] = []
            for element in scanner.elements(of: metersSpan) {
                guard element.kind == .string, names.count < MessageLimits.metersMax else {
                    throw Rejection(.invalidField, "meters must be an array of at most \(MessageLimits.metersMax) meter names")
                }
                names.append(scanner.decodedString(element))
            }
            terms.meters = names
        }
        return terms
    }

    private func threshold(_ scanner: inout JSONScanner) throws -> ThresholdLevels {
        let currency = try optionalName(.currency, &scanner) ?? "credits"
        guard let levelsSpan = span(.levels) else { throw Rejection(.missingField, "levels is required") }
        guard levelsSpan.kind == .array else { throw Rejection(.invalidField, "levels must be an array of decimals") }
        var levels: [Credits] = []
        for element in scanner.elements(of: levelsSpan) {
            guard levels.count < MessageLimits.levelsMax else {
                throw Rejection(.invalidField, "at most \(MessageLimits.levelsMax) levels")
            }
            levels.append(try decimal(element, .levels, &scanner))
        }
        return ThresholdLevels(currency: currency, levels: levels)
    }

    // MARK: Field readers

    private func requiredName(_ field: Field, _ scanner: inout JSONScanner, limit: Int) throws -> String {
        guard let name = try optionalName(field, &scanner, limit: limit) else {
            throw Rejection(.missingField, "\(field.name) is required")
        }
        return name
    }

    /// A string of 1...limit bytes.
    private func optionalName(_ field: Field, _ scanner: inout JSONScanner, limit: Int = MessageLimits.nameBytesMax) throws
        -> String?
    {
        guard let span = try nameSpan(field, &scanner, limit: limit) else { return nil }
        return scanner.decodedString(span)
    }

    /// The span of a string of 1...limit bytes.
    @inline(__always)
    private func nameSpan(_ field: Field, _ scanner: inout JSONScanner, limit: Int = MessageLimits.nameBytesMax) throws
        -> JSONSpan?
    {
        guard let span = span(field) else { return nil }
        guard span.kind == .string else { throw Rejection(.invalidField, "\(field.name) must be a string") }
        let length = scanner.decodedLength(span)
        guard length >= 1, length <= limit else {
            throw Rejection(.invalidField, "\(field.name) must be 1 to \(limit) bytes")
        }
        return span
    }

    private func optionalDecimal(_ field: Field, _ scanner: inout JSONScanner) throws -> Credits? {
        guard let span = span(field) else { return nil }
        return try decimal(span, field, &scanner)
    }

    private func decimal(_ span: JSONSpan, _ field: Field, _ scanner: inout JSONScanner) throws -> Credits {
        let parsed: Result<Credits, DecimalError>
        switch span.kind {
        case .number:
            parsed = DecimalParser.parse(UnsafeBufferPointer(rebasing: scanner.bytes[span.start..<span.end]))
        case .string:
            parsed = scanner.withDecoded(span) { DecimalParser.parse($0) }
        default:
            throw Rejection(.invalidField, "\(field.name) must be a decimal")
        }
        switch parsed {
        case .success(let value): return value
        case .failure(.precision): throw Rejection(.precision, "\(field.name) has more than 9 fractional digits")
        case .failure(.outOfRange): throw Rejection(.invalidField, "\(field.name) is 10^18 or more")
        case .failure(.syntax): throw Rejection(.invalidField, "\(field.name) is not a decimal")
        }
    }

    private func eventTime(_ span: JSONSpan, _ field: Field, _ scanner: inout JSONScanner) throws -> EventTime {
        guard span.kind == .string, let time = parseTime(span, &scanner) else {
            throw Rejection(.invalidField, "\(field.name) must be an RFC 3339 timestamp with offset")
        }
        return time
    }

    /// A timestamp through the scanner's day cache (which needs the span's bytes unescaped).
    @inline(__always)
    private func parseTime(_ span: JSONSpan, _ scanner: inout JSONScanner) -> EventTime? {
        if span.escaped { return scanner.withDecoded(span) { EventTime.parse($0) } }
        return EventTime.parse(UnsafeBufferPointer(rebasing: scanner.bytes[span.start..<span.end]), days: &scanner.days)
    }
}

/// Byte equality of a buffer and a static string.
@inline(__always)
func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
    guard bytes.count == literal.utf8CodeUnitCount else { return false }
    let p = literal.utf8Start
    for i in 0..<bytes.count where bytes[i] != p[i] { return false }
    return true
}

@inline(__always)
func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ string: String) -> Bool {
    var copy = string
    return copy.withUTF8 { equal(bytes, $0) }
}

/// Byte equality of two buffers.
@inline(__always)
func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count where a[i] != b[i] { return false }
    return true
}

// MARK: - Navigating validated values

extension JSONScanner {
    /// Spans of an array's elements (the array was validated by `scanRecord`).
    mutating func elements(of array: JSONSpan) -> [JSONSpan] {
        let saved = index
        defer { index = saved }
        index = array.start + 1
        var result: [JSONSpan] = []
        skipWhitespace()
        if bytes[index] == UInt8(ascii: "]") { return result }
        while let (span, _) = try? scanValue(depth: 2) {
            result.append(span)
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "]") { break }
            index += 1
            skipWhitespace()
        }
        return result
    }

    /// The value of a member of an object when it is a string.
    mutating func stringMember(of object: JSONSpan, named name: String) -> String? {
        let saved = index
        defer { index = saved }
        index = object.start + 1
        skipWhitespace()
        if bytes[index] == UInt8(ascii: "}") { return nil }
        while let key = try? scanString() {
            let matches = withDecoded(key) { equal($0, name) }
            skipWhitespace()
            index += 1  // :
            skipWhitespace()
            guard let (value, _) = try? scanValue(depth: 2) else { return nil }
            if matches { return value.kind == .string ? decodedString(value) : nil }
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "}") { return nil }
            index += 1
            skipWhitespace()
        }
        return nil
    }
}
