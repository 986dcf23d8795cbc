/// Why a decimal could not be read.
public enum DecimalError: Error, Equatable, Sendable {
    /// Not JSON number syntax (`"+1"`, `".5"`, `"01"`, `" 1"`, `"1e"`).
    case syntax
    /// More than 9 fractional digits as written, or a value that needs more.
    case precision
    /// The value is 10^18 or more.
    case outOfRange
}

/// Reads decimals written in JSON number syntax into exact `Credits` (SPEC §1):
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, at most 9 fractional digits as
/// written, value below 10^18. Exponents are honoured exactly and cannot overflow:
/// huge ones are answered with `.outOfRange` or `.precision` without looping over them.
public enum DecimalParser {
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Credits, DecimalError> {
        if let plain = parsePlain(bytes) { return .success(plain) }
        return parseGeneral(bytes)
    }

    /// The common shape in 64-bit arithmetic: `-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?`, which
    /// is always in range. nil for anything else (an exponent, more digits, bad syntax):
    /// `parseGeneral` decides those.
    @inline(__always)
    static func parsePlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Credits? {
        let count = bytes.count
        var index = 0
        let negative = count > 0 && bytes[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        let integerStart = index
        var integer: UInt64 = 0
        while index < count, index - integerStart < 18 {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { break }
            integer = integer &* 10 &+ UInt64(digit)
            index += 1
        }
        let integerDigits = index - integerStart
        // No digits, a leading zero before another digit, or 18 digits with more to come.
        guard integerDigits > 0, integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return nil }
        var fraction: Int64 = 0
        var fractionDigits = 0
        if index < count {
            fractionDigits = count - index - 1
            guard bytes[index] == UInt8(ascii: "."), fractionDigits >= 1, fractionDigits <= Credits.fractionDigits else { return nil }
            index += 1
            while index < count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                fraction = fraction &* 10 &+ Int64(digit)
                index += 1
            }
        }
        let nanos = Int128(integer) * Credits.scale + Int128(fraction &* powersOfTen[Credits.fractionDigits - fractionDigits])
        return Credits(nanos: negative ? -nanos : nanos)
    }

    /// Every number `parse` accepts or rejects, the plain ones included.
    static func parseGeneral(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Credits, DecimalError> {
        var index = 0
        let count = bytes.count
        var negative = false
        if index < count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        // Integer part.
        guard index < count, isDigit(bytes[index]) else { return .failure(.syntax) }
        var mantissa: Int128 = 0
        var significant = 0  // digits accumulated into mantissa after leading zeros
        var tooManyDigits = false
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < count, isDigit(bytes[index]) { return .failure(.syntax) }
        } else {
            while index < count, isDigit(bytes[index]) {
                accumulate(bytes[index], into: &mantissa, significant: &significant, overflow: &tooManyDigits)
                index += 1
            }
        }
        // Fraction.
        var fractionDigits = 0
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < count, isDigit(bytes[index]) else { return .failure(.syntax) }
            while index < count, isDigit(bytes[index]) {
                accumulate(bytes[index], into: &mantissa, significant: &significant, overflow: &tooManyDigits)
                fractionDigits += 1
                index += 1
            }
        }
        // Exponent, clamped so it can never overflow: anything beyond ±10^6 is hopeless anyway.
        var exponent = 0
        if index < count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            guard index < count, isDigit(bytes[index]) else { return .failure(.syntax) }
            while index < count, isDigit(bytes[index]) {
                if exponent < 1_000_000 { exponent = exponent * 10 + Int(bytes[index] &- UInt8(ascii: "0")) }
                index += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        guard index == count else { return .failure(.syntax) }
        if fractionDigits > Credits.fractionDigits { return .failure(.precision) }
        if tooManyDigits { return .failure(.outOfRange) }
        if mantissa == 0 { return .success(.zero) }

        // value = mantissa × 10^(exponent − fractionDigits); we want it in nanos (×10^9).
        var shift = exponent - fractionDigits + Credits.fractionDigits
        while shift < 0 {
            if mantissa % 10 != 0 { return .failure(.precision) }
            mantissa /= 10
            shift += 1
        }
        // Beyond 27 digits the value is at least 10^18 units whatever the mantissa.
        if shift > 27 { return .failure(.outOfRange) }
        // The usual case in one 64-bit multiplication: both factors small enough that the
        // product cannot overflow (then the range check below decides).
        if shift <= 9, mantissa < 1 << 32 {
            return finish(Int128(Int64(mantissa) &* DecimalParser.powersOfTen[shift]), negative: negative)
        }
        while shift > 0 {
            mantissa *= 10
            if mantissa >= Credits.nanosLimit { return .failure(.outOfRange) }
            shift -= 1
        }
        return finish(mantissa, negative: negative)
    }

    /// 10^0 ... 10^9.
    static let powersOfTen: [Int64] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000]

    @inline(__always)
    private static func finish(_ nanos: Int128, negative: Bool) -> Result<Credits, DecimalError> {
        if nanos >= Credits.nanosLimit { return .failure(.outOfRange) }
        return .success(Credits(nanos: negative ? -nanos : nanos))
    }

    public static func parse(_ text: String) -> Result<Credits, DecimalError> {
        var copy = text
        return copy.withUTF8 { parse($0) }
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    /// Adds one digit; past 30 significant digits the value can only be out of range,
    /// or rejected for precision, so further digits are counted but not kept.
    @inline(__always)
    private static func accumulate(_ digit: UInt8, into mantissa: inout Int128, significant: inout Int, overflow: inout Bool) {
        let value = Int128(digit &- UInt8(ascii: "0"))
        if significant == 0 && value == 0 { return }
        significant += 1
        if significant > 30 {
            // Keep the scale right (the digit still counts), but the magnitude is lost:
            // mark it. A trailing run of zeros after 30 digits with a negative exponent
            // could in theory still be representable; we reject such inputs as out of range.
            overflow = true
            return
        }
        mantissa = mantissa * 10 + value
    }
}
