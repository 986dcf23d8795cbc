/// An exact amount of money in fixed point: 9 fractional digits held in an `Int128`
/// of nano-units. Never binary floating point.
///
/// The wire contract (SPEC §1) limits parsed amounts to values below 10^18 with at most
/// 9 fractional digits; sums of many such amounts stay far inside `Int128`'s range
/// (about 1.7 × 10^29 whole units), and every operation is overflow-checked anyway.
public struct Credits: Hashable, Comparable, Sendable {
    /// Value in units of 10^-9.
    public var nanos: Int128

    public static let fractionDigits = 9
    public static let scale: Int128 = 1_000_000_000
    /// Parsed amounts must be below this many whole units (SPEC §1).
    public static let wholeUnitsLimit: Int128 = 1_000_000_000_000_000_000
    public static let nanosLimit: Int128 = wholeUnitsLimit * scale

    public static let zero = Credits(nanos: 0)

    @inlinable public init(nanos: Int128) { self.nanos = nanos }

    /// Whole units, for tests and literals: `Credits(units: 5)` is 5.000000000.
    public init(units: Int) { self.nanos = Int128(units) * Credits.scale }

    @inlinable public static func < (a: Credits, b: Credits) -> Bool { a.nanos < b.nanos }

    @inlinable public var isZero: Bool { nanos == 0 }
    @inlinable public var isPositive: Bool { nanos > 0 }
    @inlinable public var isNegative: Bool { nanos < 0 }

    /// Overflow-checked addition; traps on overflow (an invariant breach, not an input error:
    /// every input amount is bounded far below the range).
    @inlinable public static func + (a: Credits, b: Credits) -> Credits {
        let (sum, overflow) = a.nanos.addingReportingOverflow(b.nanos)
        precondition(!overflow, "Credits overflow")
        return Credits(nanos: sum)
    }

    @inlinable public static func - (a: Credits, b: Credits) -> Credits {
        let (difference, overflow) = a.nanos.subtractingReportingOverflow(b.nanos)
        precondition(!overflow, "Credits overflow")
        return Credits(nanos: difference)
    }

    @inlinable public static func += (a: inout Credits, b: Credits) { a = a + b }
    @inlinable public static func -= (a: inout Credits, b: Credits) { a = a - b }
    @inlinable public static prefix func - (a: Credits) -> Credits { Credits(nanos: -a.nanos) }

    /// `quantity × unitPrice`, rounded half-to-even to 9 fractional digits (SPEC §2).
    /// Returns nil when the exact product does not fit (far beyond any valid cost).
    public static func rated(quantity: Credits, unitPrice: Credits) -> Credits? {
        let (product, overflow) = quantity.nanos.multipliedReportingOverflow(by: unitPrice.nanos)
        if overflow { return nil }
        // `product` is in units of 10^-18; bring it to 10^-9 with banker's rounding.
        let negative = product < 0
        let magnitude = negative ? -product : product
        var quotient = magnitude / scale
        let remainder = magnitude % scale
        let half = scale / 2
        if remainder > half || (remainder == half && quotient % 2 == 1) { quotient += 1 }
        return Credits(nanos: negative ? -quotient : quotient)
    }
}

// MARK: - Credits + text

extension Credits: CustomStringConvertible {
    /// Plain decimal, no exponent, trailing fractional zeros removed: `-1.5`, `0`, `98.000000001`.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(48)
        appendDecimal(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the plain decimal form to a byte buffer (no intermediate `String`).
    public func appendDecimal(to out: inout [UInt8]) {
        var magnitude = nanos
        if magnitude < 0 {
            out.append(UInt8(ascii: "-"))
            magnitude = -magnitude
        }
        let whole = magnitude / Credits.scale
        var fraction = magnitude % Credits.scale
        appendUnsigned(whole, to: &out)
        guard fraction != 0 else { return }
        out.append(UInt8(ascii: "."))
        var digits = Credits.fractionDigits
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        var buffer: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &buffer) { raw in
            var value = fraction
            for index in stride(from: digits - 1, through: 0, by: -1) {
                raw[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
            out.append(contentsOf: raw[0..<digits])
        }
    }
}

/// Appends a non-negative integer in decimal.
@usableFromInline
func appendUnsigned(_ value: Int128, to out: inout [UInt8]) {
    precondition(value >= 0)
    if value < 10 {
        out.append(UInt8(ascii: "0") + UInt8(value))
        return
    }
    var digits: [UInt8] = []
    var rest = value
    while rest > 0 {
        digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
        rest /= 10
    }
    out.append(contentsOf: digits.reversed())
}

/// Appends a signed 64-bit integer in decimal without allocating.
func appendInteger(_ value: Int64, to out: inout [UInt8]) {
    if value < 0 { out.append(UInt8(ascii: "-")) }
    var magnitude = value.magnitude
    if magnitude == 0 {
        out.append(UInt8(ascii: "0"))
        return
    }
    var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes ≥ 20 digits
    withUnsafeMutableBytes(of: &buffer) { raw in
        var index = raw.count
        while magnitude > 0 {
            index -= 1
            raw[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        }
        out.append(contentsOf: raw[index...])
    }
}
