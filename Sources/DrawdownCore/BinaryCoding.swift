/// A little binary format for ledger payloads and snapshots: LEB128 varints, zigzag for
/// signed values, length-prefixed bytes. Deterministic: the same value always encodes to
/// the same bytes.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    public mutating func varint(_ value: Int) { varint(UInt64(value)) }
    public mutating func signed(_ value: Int64) { varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    /// Eight bytes, little-endian (one append, not eight).
    public mutating func uint64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func credits(_ value: Credits) {
        let raw = UInt128(bitPattern: value.nanos)
        uint64(UInt64(truncatingIfNeeded: raw))
        uint64(UInt64(truncatingIfNeeded: raw >> 64))
    }

    public mutating func data(_ value: some Collection<UInt8>) {
        varint(value.count)
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ value: String) { data(value.utf8) }

    public mutating func optionalString(_ value: String?) {
        if let value {
            byte(1)
            string(value)
        } else {
            byte(0)
        }
    }

    public mutating func eventTime(_ value: EventTime) {
        signed(value.nanos)
        signed(Int64(value.offsetMinutes))
        byte(value.fractionDigits)
        byte(value.style)
    }
}

/// Reads what `BinaryWriter` wrote; every read is bounds-checked and throws on damage.
public struct BinaryReader {
    public struct Damaged: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    private let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func byte() throws(Damaged) -> UInt8 {
        guard offset < bytes.count else { throw Damaged(description: "unexpected end at \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func varint() throws(Damaged) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw Damaged(description: "varint too long at \(offset)") }
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }

    public mutating func count(max: Int = 1 << 30) throws(Damaged) -> Int {
        let value = try varint()
        guard value <= UInt64(max) else { throw Damaged(description: "count \(value) over \(max) at \(offset)") }
        return Int(value)
    }

    public mutating func signed() throws(Damaged) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    public mutating func uint64() throws(Damaged) -> UInt64 {
        guard offset + 8 <= bytes.count else { throw Damaged(description: "unexpected end at \(offset)") }
        let value = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        offset += 8
        return value
    }

    public mutating func credits() throws(Damaged) -> Credits {
        let low = try uint64()
        let high = try uint64()
        return Credits(nanos: Int128(bitPattern: UInt128(high) << 64 | UInt128(low)))
    }

    public mutating func data() throws(Damaged) -> ArraySlice<UInt8> {
        let length = try count()
        guard offset + length <= bytes.count else { throw Damaged(description: "bytes past the end at \(offset)") }
        defer { offset += length }
        return bytes[offset..<(offset + length)]
    }

    public mutating func string() throws(Damaged) -> String {
        let slice = try data()
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw Damaged(description: "invalid UTF-8 at \(offset)")
        }
        return text
    }

    public mutating func optionalString() throws(Damaged) -> String? {
        try byte() == 0 ? nil : try string()
    }

    public mutating func eventTime() throws(Damaged) -> EventTime {
        let nanos = try signed()
        let offsetMinutes = try signed()
        guard let minutes = Int16(exactly: offsetMinutes) else { throw Damaged(description: "bad offset at \(offset)") }
        return EventTime(nanos: nanos, offsetMinutes: minutes, fractionDigits: try byte(), style: try byte())
    }
}

// MARK: - Ledger entries

extension LedgerEntry {
    public func encode(into writer: inout BinaryWriter) {
        writer.varint(seq)
        writer.byte(type.code)
        writer.string(customer)
        writer.string(currency)
        writer.optionalString(grant)
        writer.credits(amount)
        writer.string(source)
        writer.eventTime(timestamp)
        writer.credits(balance)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Damaged) -> LedgerEntry {
        let seq = try reader.varint()
        let typeIndex = Int(try reader.byte())
        guard typeIndex < EntryType.byCode.count else { throw BinaryReader.Damaged(description: "bad entry type \(typeIndex)") }
        return LedgerEntry(
            seq: seq, type: EntryType.byCode[typeIndex], customer: try reader.string(), currency: try reader.string(),
            grant: try reader.optionalString(), amount: try reader.credits(), source: try reader.string(),
            timestamp: try reader.eventTime(), balance: try reader.credits())
    }
}

extension EntryType {
    /// The types by their code in the binary formats: the order of `allCases`, built once
    /// (`allCases` makes a new array on every use).
    static let byCode: [EntryType] = allCases

    /// The type's code in ledger payloads and snapshots: its position in `allCases`.
    var code: UInt8 {
        switch self {
        case .grant: 0
        case .draw: 1
        case .overage: 2
        case .expire: 3
        case .void: 4
        case .activate: 5
        case .adjust: 6
        }
    }
}
