/// Every limit the message contract sets, in one place (SPEC §1, §4).
public enum MessageLimits {
    /// A record above this size is rejected with `too_large`.
    public static let recordBytesMax = 1 << 20
    /// `id` and `customer` are 1 to this many bytes.
    public static let idBytesMax = 128
    /// Other names (meter, currency, category) are bounded the same way.
    public static let nameBytesMax = 128
    public static let priorityMax = 1000
    public static let priorityDefault = 100
    /// Threshold levels per message.
    public static let levelsMax = 64
    /// Meter names in a grant's scope.
    public static let metersMax = 256
}

public enum MessageType: String, Sendable, CaseIterable {
    case usage, grant, void, threshold
}

/// A usage event, rated: what it costs and in which currency.
public struct Usage: Sendable, Equatable {
    public var cost: Credits
    public var currency: String
    /// The meter, when given: grants scoped to meters draw only for these.
    public var meter: String?

    public init(cost: Credits, currency: String, meter: String?) {
        self.cost = cost
        self.currency = currency
        self.meter = meter
    }
}

/// The terms of a `grant` command.
public struct GrantTerms: Sendable, Equatable {
    public var amount: Credits
    public var currency: String
    public var priority: Int
    public var category: String
    public var effectiveAt: EventTime
    public var expiresAt: EventTime?
    /// Meters the grant may pay for; nil: all.
    public var meters: [String]?

    public init(
        amount: Credits, currency: String = "credits", priority: Int = MessageLimits.priorityDefault,
        category: String = "promotional", effectiveAt: EventTime, expiresAt: EventTime? = nil, meters: [String]? = nil
    ) {
        self.amount = amount
        self.currency = currency
        self.priority = priority
        self.category = category
        self.effectiveAt = effectiveAt
        self.expiresAt = expiresAt
        self.meters = meters
    }
}

/// A `threshold` command: alert levels for one currency.
public struct ThresholdLevels: Sendable, Equatable {
    public var currency: String
    public var levels: [Credits]

    public init(currency: String, levels: [Credits]) {
        self.currency = currency
        self.levels = levels
    }
}

/// One input message, validated and (for usage) rated.
public struct Message: Sendable {
    public enum Body: Sendable {
        case usage(Usage)
        case grant(GrantTerms)
        /// The id of the grant to void.
        case void(grant: String)
        case threshold(ThresholdLevels)
    }

    public var id: String { didSet { keyHashes = nil } }
    public var customer: String { didSet { keyHashes = nil } }
    public var timestamp: EventTime
    /// Canonical content hash: equal for records that differ only in whitespace, field
    /// order or `null` optional fields (SPEC §3.1 `conflict`).
    public var contentHash: UInt64
    public var body: Body
    /// The customer's hash and the idempotency fingerprint, when the decoder computed them
    /// from the record's bytes (cleared when `id` or `customer` change).
    var keyHashes: KeyHashes?

    public init(id: String, customer: String, timestamp: EventTime, contentHash: UInt64, body: Body) {
        self.id = id
        self.customer = customer
        self.timestamp = timestamp
        self.contentHash = contentHash
        self.body = body
    }

    /// The customer's key and the message's idempotency fingerprint.
    var key: (customer: CustomerKey, fingerprint: KeyFingerprint) {
        let hashes = keyHashes ?? KeyHashes(customer: customer, id: id)
        return (CustomerKey(id: customer, hash: hashes.customer), hashes.fingerprint)
    }

    public var type: MessageType {
        switch body {
        case .usage: .usage
        case .grant: .grant
        case .void: .void
        case .threshold: .threshold
        }
    }
}

/// Why a record was not applied (SPEC §4). The raw values are the wire names.
public enum RejectReason: String, Sendable, CaseIterable {
    case malformed
    case missingField = "missing_field"
    case invalidField = "invalid_field"
    case precision
    case unknownType = "unknown_type"
    case unknownMeter = "unknown_meter"
    case unknownGrant = "unknown_grant"
    case keyMismatch = "key_mismatch"
    case tooLarge = "too_large"
    case tooLate = "too_late"
    case conflict
}

/// A rejected record: the reason, and a human-readable detail.
public struct Rejection: Error, Sendable, Equatable {
    public var reason: RejectReason
    public var detail: String

    public init(_ reason: RejectReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }
}
