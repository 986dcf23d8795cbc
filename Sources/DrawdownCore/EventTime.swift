/// An event time from an RFC 3339 timestamp: an instant in nanoseconds since the Unix
/// epoch, plus how it was written so that the original text can be echoed exactly in
/// ledger entries (SPEC §7 carries the message's own timestamp text).
///
/// Equality, hashing and ordering look at the instant only.
public struct EventTime: Sendable {
    public var nanos: Int64
    /// The written UTC offset, in minutes.
    public var offsetMinutes: Int16
    /// Fractional-second digits as written (0–9).
    public var fractionDigits: UInt8
    /// Spelling details: see `Style`.
    public var style: UInt8

    public enum Style {
        public static let lowercaseT: UInt8 = 1
        public static let lowercaseZ: UInt8 = 2
        /// Offset written numerically (`+00:00`) rather than `Z`.
        public static let numericOffset: UInt8 = 4
        /// `-00:00`: "offset unknown" in RFC 3339.
        public static let negativeZero: UInt8 = 8
    }

    public init(nanos: Int64, offsetMinutes: Int16 = 0, fractionDigits: UInt8 = 0, style: UInt8 = 0) {
        self.nanos = nanos
        self.offsetMinutes = offsetMinutes
        self.fractionDigits = fractionDigits
        self.style = style
    }

    /// The same instant written as UTC with `Z` and as many fractional digits as it needs (up to 9).
    public var canonical: EventTime {
        var digits: UInt8 = 9
        var fraction = nanos % 1_000_000_000
        if fraction < 0 { fraction += 1_000_000_000 }
        if fraction == 0 { digits = 0 } else {
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
        }
        return EventTime(nanos: nanos, fractionDigits: digits)
    }

    public static let nanosPerSecond: Int64 = 1_000_000_000
}

extension EventTime: Hashable, Comparable {
    public static func == (a: EventTime, b: EventTime) -> Bool { a.nanos == b.nanos }
    public static func < (a: EventTime, b: EventTime) -> Bool { a.nanos < b.nanos }
    public func hash(into hasher: inout Hasher) { hasher.combine(nanos) }
}

// MARK: - EventTime + parsing

extension EventTime {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339 §5.6; `t` and `z` may be
    /// lowercase). At most 9 fractional digits; leap seconds (`:60`) are not accepted.
    public static func parse(_ s: UnsafeBufferPointer<UInt8>) -> EventTime? {
        var days = DayCache()
        return parse(s, days: &days)
    }

    /// The day of the last timestamp parsed: the first ten bytes (`YYYY-MM-DD`) and the
    /// days since the epoch they give. A stream's timestamps mostly share their day, so the
    /// date is read and checked once per day rather than once per event.
    struct DayCache: Sendable {
        var head: UInt64 = 0
        var tail: UInt16 = 0
        /// Days since 1970-01-01; `nil`: nothing cached.
        var days: Int? = nil
    }

    /// `parse(_:)`, reading the date from `days` when its ten bytes are those of the last one.
    static func parse(_ s: UnsafeBufferPointer<UInt8>, days cache: inout DayCache) -> EventTime? {
        let n = s.count
        guard n >= 20, let base = s.baseAddress else { return nil }
        @inline(__always) func digits(_ at: Int, _ count: Int) -> Int? {
            var value = 0
            for i in at..<(at + count) {
                let d = s[i] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                value = value * 10 + Int(d)
            }
            return value
        }
        let head = UnsafeRawPointer(base).loadUnaligned(as: UInt64.self)
        let tail = UnsafeRawPointer(base).loadUnaligned(fromByteOffset: 8, as: UInt16.self)
        let days: Int
        if let cached = cache.days, cache.head == head, cache.tail == tail {
            days = cached
        } else {
            guard let year = digits(0, 4), s[4] == UInt8(ascii: "-"),
                let month = digits(5, 2), s[7] == UInt8(ascii: "-"),
                let day = digits(8, 2),
                (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month)
            else { return nil }
            days = daysFromCivil(year: year, month: month, day: day)
            cache = DayCache(head: head, tail: tail, days: days)
        }
        guard let hour = digits(11, 2), s[13] == UInt8(ascii: ":"),
            let minute = digits(14, 2), s[16] == UInt8(ascii: ":"),
            let second = digits(17, 2)
        else { return nil }
        var style: UInt8 = 0
        switch s[10] {
        case UInt8(ascii: "T"): break
        case UInt8(ascii: "t"): style |= Style.lowercaseT
        default: return nil
        }
        guard hour < 24, minute < 60, second < 60 else { return nil }
        var index = 19
        var fraction: Int64 = 0
        var fractionDigits = 0
        if index < n, s[index] == UInt8(ascii: ".") {
            index += 1
            while index < n, s[index] &- UInt8(ascii: "0") < 10 {
                fractionDigits += 1
                guard fractionDigits <= 9 else { return nil }
                fraction = fraction * 10 + Int64(s[index] &- UInt8(ascii: "0"))
                index += 1
            }
            guard fractionDigits > 0 else { return nil }
        }
        for _ in fractionDigits..<9 { fraction *= 10 }
        guard index < n else { return nil }
        var offsetMinutes = 0
        switch s[index] {
        case UInt8(ascii: "Z"):
            index += 1
        case UInt8(ascii: "z"):
            style |= Style.lowercaseZ
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard index + 6 == n, let oh = digits(index + 1, 2), s[index + 3] == UInt8(ascii: ":"),
                let om = digits(index + 4, 2), oh < 24, om < 60
            else { return nil }
            style |= Style.numericOffset
            offsetMinutes = oh * 60 + om
            if s[index] == UInt8(ascii: "-") {
                if offsetMinutes == 0 { style |= Style.negativeZero }
                offsetMinutes = -offsetMinutes
            }
            index += 6
        default:
            return nil
        }
        guard index == n else { return nil }
        let localSeconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        let utcSeconds = localSeconds - Int64(offsetMinutes) * 60
        // Nanoseconds since the epoch fit Int64 from 1677-09-21 to 2262-04-11: a valid
        // RFC 3339 time outside that range is rejected (nil), never trapped on.
        let (scaled, overflowed) = utcSeconds.multipliedReportingOverflow(by: nanosPerSecond)
        let (nanos, overflowedAdding) = scaled.addingReportingOverflow(fraction)
        guard !overflowed, !overflowedAdding else { return nil }
        // Formatting adds the offset back: that must fit too.
        guard !nanos.addingReportingOverflow(Int64(offsetMinutes) * 60 * nanosPerSecond).overflow else { return nil }
        return EventTime(
            nanos: nanos, offsetMinutes: Int16(offsetMinutes),
            fractionDigits: UInt8(fractionDigits), style: style)
    }

    public static func parse(_ text: String) -> EventTime? {
        var copy = text
        return copy.withUTF8 { parse($0) }
    }
}

// MARK: - EventTime + formatting

extension EventTime: CustomStringConvertible {
    public var description: String {
        var out: [UInt8] = []
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes the timestamp back exactly as it was read (same offset, digits and case).
    public func append(to out: inout [UInt8]) {
        let local = nanos + Int64(offsetMinutes) * 60 * EventTime.nanosPerSecond
        var seconds = local / EventTime.nanosPerSecond
        var fraction = local % EventTime.nanosPerSecond
        if fraction < 0 {
            fraction += EventTime.nanosPerSecond
            seconds -= 1
        }
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let (year, month, day) = civilFromDays(Int(days))
        // Written into a stack buffer, then appended once (at most 36 bytes:
        // `YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM`).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
            var n = 0
            func put(_ byte: UInt8) {
                buffer[n] = byte
                n += 1
            }
            func two(_ v: Int) {
                put(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v / 10))
                put(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10))
            }
            two(year / 100)
            two(year % 100)
            put(UInt8(ascii: "-"))
            two(month)
            put(UInt8(ascii: "-"))
            two(day)
            put(style & Style.lowercaseT != 0 ? UInt8(ascii: "t") : UInt8(ascii: "T"))
            two(Int(secondOfDay / 3600))
            put(UInt8(ascii: ":"))
            two(Int(secondOfDay / 60 % 60))
            put(UInt8(ascii: ":"))
            two(Int(secondOfDay % 60))
            if fractionDigits > 0 {
                put(UInt8(ascii: "."))
                var divisor: Int64 = 100_000_000
                for _ in 0..<Int(fractionDigits) {
                    put(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: fraction / divisor % 10))
                    divisor /= 10
                }
            }
            if style & Style.numericOffset == 0 {
                put(style & Style.lowercaseZ != 0 ? UInt8(ascii: "z") : UInt8(ascii: "Z"))
            } else {
                let negative = offsetMinutes < 0 || style & Style.negativeZero != 0
                put(negative ? UInt8(ascii: "-") : UInt8(ascii: "+"))
                let magnitude = Int(offsetMinutes.magnitude)
                two(magnitude / 60)
                put(UInt8(ascii: ":"))
                two(magnitude % 60)
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }
}

// MARK: - Calendar arithmetic (proleptic Gregorian; H. Hinnant's algorithms)

func daysInMonth(year: Int, month: Int) -> Int {
    switch month {
    case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}

// MARK: - Durations

/// Durations as written on the command line and in config: `24h`, `90m`, `500ms`, `1h30m`.
public enum DurationParser {
    /// Nanoseconds, or nil when the text is not a duration. Units: ns, us, ms, s, m, h, d.
    public static func nanoseconds(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        var index = 0
        var total: Int64 = 0
        while index < bytes.count {
            var value: Int64 = 0
            let start = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(bytes[index] &- UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                value = a
                index += 1
            }
            guard index > start else { return nil }
            let unitStart = index
            while index < bytes.count, bytes[index] &- UInt8(ascii: "0") >= 10 { index += 1 }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            let multiplier: Int64
            switch unit {
            case "ns": multiplier = 1
            case "us", "µs": multiplier = 1_000
            case "ms": multiplier = 1_000_000
            case "s": multiplier = 1_000_000_000
            case "m": multiplier = 60_000_000_000
            case "h": multiplier = 3_600_000_000_000
            case "d": multiplier = 86_400_000_000_000
            default: return nil
            }
            let (product, o1) = value.multipliedReportingOverflow(by: multiplier)
            let (sum, o2) = total.addingReportingOverflow(product)
            guard !o1, !o2 else { return nil }
            total = sum
        }
        return total
    }
}
