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
        let negative = nanos < 0
        let magnitude = nanos.magnitude
        // Every amount below 1.8 × 10^10 units (all but absurd sums) formats with 64-bit
        // divisions; larger ones take the 128-bit path. Same text either way.
        var whole: UInt128
        var fraction: UInt64
        if magnitude <= UInt128(UInt64.max) {
            let small = UInt64(magnitude)
            whole = UInt128(small / 1_000_000_000)
            fraction = small % 1_000_000_000
        } else {
            whole = magnitude / UInt128(Credits.scale)
            fraction = UInt64(magnitude % UInt128(Credits.scale))
        }
        // Sign, up to 39 whole digits, point, 9 fractional digits: 50 bytes.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 56) { buffer in
            var n = 0
            if negative {
                buffer[0] = UInt8(ascii: "-")
                n = 1
            }
            n = writeUnsigned(whole, into: buffer, at: n)
            if fraction != 0 {
                var digits = Credits.fractionDigits
                while fraction % 10 == 0 {
                    fraction /= 10
                    digits -= 1
                }
                buffer[n] = UInt8(ascii: ".")
                // Digits n+1 ... n+digits, written from the last.
                var index = n + digits
                while index > n {
                    buffer[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: fraction % 10)
                    fraction /= 10
                    index -= 1
                }
                n += digits + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }
}

/// Appends a non-negative integer in decimal.
@usableFromInline
func appendUnsigned(_ value: Int128, to out: inout [UInt8]) {
    precondition(value >= 0)
    appendDigits(UInt128(value), to: &out)
}

/// Appends `value` in decimal (through a stack buffer, no allocation).
@inline(__always)
private func appendDigits(_ value: UInt128, to out: inout [UInt8]) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
        let n = writeUnsigned(value, into: buffer, at: 0)
        out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
    }
}

/// Writes `value` in decimal at `start` of `buffer` (room for 39 digits); returns the end.
@inline(__always)
func writeUnsigned(_ value: UInt128, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
    // The digits of a 128-bit value above 64 bits: 128-bit divisions down to 64 bits.
    var high = value
    var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)  // 40 bytes
    return withUnsafeMutableBytes(of: &scratch) { digits in
        var end = digits.count
        while high > UInt128(UInt64.max) {
            end -= 1
            digits[end] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: high % 10)
            high /= 10
        }
        var low = UInt64(high)
        repeat {
            end -= 1
            digits[end] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: low % 10)
            low /= 10
        } while low > 0
        let count = digits.count - end
        for i in 0..<count { buffer[start + i] = digits[end + i] }
        return start + count
    }
}

/// Appends a signed 64-bit integer in decimal without allocating.
func appendInteger(_ value: Int64, to out: inout [UInt8]) {
    if value < 0 { out.append(UInt8(ascii: "-")) }
    appendDigits(UInt128(value.magnitude), to: &out)
}
