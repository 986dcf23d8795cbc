/// The kinds of ledger entry (SPEC §5).
public enum EntryType: String, Sendable, CaseIterable {
    case grant, draw, overage, expire, void, activate, adjust
}

/// One change, as the ledger records it (SPEC §5, §7).
public struct LedgerEntry: Sendable, Equatable {
    /// Per-partition sequence number, from 1.
    public var seq: UInt64
    public var type: EntryType
    public var customer: String
    public var currency: String
    /// The grant involved; nil on `overage`.
    public var grant: String? {
        get { grantID.isEmpty ? nil : grantID }
        set { grantID = newValue ?? "" }
    }
    /// `grant`, with "" for none (a grant id is never empty, SPEC §1). Stored this way because
    /// an initializer that stores a non-trivial `Optional` made the optimizer build every entry
    /// in a temporary, copy it (four retains) and destroy the temporary (four releases):
    /// ~200 instructions an entry in the engine's hot path.
    var grantID: String
    /// Positive on `grant` and `overage`, negative on `draw`, `expire`, `void`, zero on `activate`.
    public var amount: Credits
    /// The id of the message that caused it; the grant's own id on `expire` and `activate`.
    public var source: String
    /// The message's event time; the grant's `expires_at` on `expire`, `effective_at` on `activate`.
    public var timestamp: EventTime
    /// The customer's available balance in `currency` after this entry.
    public var balance: Credits

    public init(
        seq: UInt64, type: EntryType, customer: String, currency: String, grant: String?, amount: Credits,
        source: String, timestamp: EventTime, balance: Credits
    ) {
        self.seq = seq
        self.type = type
        self.customer = customer
        self.currency = currency
        self.grantID = grant ?? ""
        self.amount = amount
        self.source = source
        self.timestamp = timestamp
        self.balance = balance
    }

    /// SPEC §7 shape: `{"seq": 17, "type": "draw", ...}`. `partition` is added when given.
    public func appendJSON(to out: inout [UInt8], partition: Int32? = nil) {
        JSONWriter.appendLiteral(#"{"seq":"#, to: &out)
        appendInteger(Int64(seq), to: &out)
        JSONWriter.appendLiteral(#","type":""#, to: &out)
        out.append(contentsOf: type.rawValue.utf8)
        JSONWriter.appendLiteral(#"","customer":"#, to: &out)
        JSONWriter.appendString(customer, to: &out)
        JSONWriter.appendLiteral(#","currency":"#, to: &out)
        JSONWriter.appendString(currency, to: &out)
        if let grant {
            JSONWriter.appendLiteral(#","grant":"#, to: &out)
            JSONWriter.appendString(grant, to: &out)
        }
        JSONWriter.appendLiteral(#","amount":""#, to: &out)
        amount.appendDecimal(to: &out)
        JSONWriter.appendLiteral(#"","source":"#, to: &out)
        JSONWriter.appendString(source, to: &out)
        JSONWriter.appendLiteral(#","timestamp":""#, to: &out)
        timestamp.append(to: &out)
        JSONWriter.appendLiteral(#"","balance":""#, to: &out)
        balance.appendDecimal(to: &out)
        out.append(UInt8(ascii: "\""))
        if let partition {
            JSONWriter.appendLiteral(#","partition":"#, to: &out)
            appendInteger(Int64(partition), to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// Alerts (SPEC §6).
public enum AlertKind: String, Sendable, CaseIterable {
    case balanceLow = "balance_low"
    case balanceExhausted = "balance_exhausted"
    case grantExpired = "grant_expired"
}

public struct Alert: Sendable, Equatable {
    public var kind: AlertKind
    public var customer: String
    public var currency: String
    /// The available balance after the change that raised it.
    public var available: Credits
    /// The threshold level crossed (`balance_low`).
    public var level: Credits?
    /// The grant that expired (`grant_expired`) and the amount that went with it.
    public var grant: String?
    public var expired: Credits?
    /// The message that caused it (the grant's id for an expiry).
    public var source: String
    public var timestamp: EventTime
    /// The ledger sequence of the last entry it reflects.
    public var seq: UInt64

    public func appendJSON(to out: inout [UInt8], partition: Int32? = nil) {
        JSONWriter.appendLiteral(#"{"type":""#, to: &out)
        out.append(contentsOf: kind.rawValue.utf8)
        JSONWriter.appendLiteral(#"","customer":"#, to: &out)
        JSONWriter.appendString(customer, to: &out)
        JSONWriter.appendLiteral(#","currency":"#, to: &out)
        JSONWriter.appendString(currency, to: &out)
        JSONWriter.appendLiteral(#","available":""#, to: &out)
        available.appendDecimal(to: &out)
        out.append(UInt8(ascii: "\""))
        if let level {
            JSONWriter.appendLiteral(#","level":""#, to: &out)
            level.appendDecimal(to: &out)
            out.append(UInt8(ascii: "\""))
        }
        if let grant {
            JSONWriter.appendLiteral(#","grant":"#, to: &out)
            JSONWriter.appendString(grant, to: &out)
        }
        if let expired {
            JSONWriter.appendLiteral(#","amount":""#, to: &out)
            expired.appendDecimal(to: &out)
            out.append(UInt8(ascii: "\""))
        }
        JSONWriter.appendLiteral(#","source":"#, to: &out)
        JSONWriter.appendString(source, to: &out)
        JSONWriter.appendLiteral(#","timestamp":""#, to: &out)
        timestamp.append(to: &out)
        JSONWriter.appendLiteral(#"","seq":"#, to: &out)
        appendInteger(Int64(seq), to: &out)
        if let partition {
            JSONWriter.appendLiteral(#","partition":"#, to: &out)
            appendInteger(Int64(partition), to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

/// Minimal JSON output helpers (no Foundation).
public enum JSONWriter {
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends a literal's bytes as they are, unescaped (the punctuation and field names the
    /// formatters write): one copy from static memory, without going through a `String`.
    @inline(__always)
    public static func appendLiteral(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends a JSON string literal; UTF-8 passes through, control characters are escaped.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        var copy = string
        copy.withUTF8 { appendString(bytes: $0, to: &out) }
    }

    public static func appendString(bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Runs of bytes that need no escape are copied whole; ids and names usually are one run.
        var runStart = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
            runStart = i + 1
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            default:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
        out.append(UInt8(ascii: "\""))
    }

    /// A signed integer in decimal, no allocation.
    public static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        DrawdownCore.appendInteger(value, to: &out)
    }

    /// `"<decimal>"`.
    public static func appendAmount(_ amount: Credits, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        amount.appendDecimal(to: &out)
        out.append(UInt8(ascii: "\""))
    }
}
