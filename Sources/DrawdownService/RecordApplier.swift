import DrawdownCore
import DrawdownKafka

/// A record to produce once the batch it came from is durable.
public struct OutputRecord: Sendable {
    public enum Kind: Sendable, Equatable { case balanceChange, alert, deadLetter }
    public var kind: Kind
    /// The customer for balance changes and alerts; the original record key for dead letters.
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(kind: Kind, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.kind = kind
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// Dead-letter header names (the record value is the original bytes, untouched).
public enum DeadLetterHeader {
    public static let reason = "drawdown.reason"
    public static let detail = "drawdown.detail"
    public static let sourceTopic = "drawdown.source.topic"
    public static let sourcePartition = "drawdown.source.partition"
    public static let sourceOffset = "drawdown.source.offset"
}

/// An input record whose key and value bytes are borrowed for the duration of one `apply`.
struct RawInput {
    var topic: String
    var offset: Int64
    var key: UnsafeBufferPointer<UInt8>?
    var value: UnsafeBufferPointer<UInt8>
}

/// Applies one input record to its partition's engine: decode (with the Kafka key), apply,
/// collect the entries written and, when asked, the output records. The live shards and
/// recovery both go through here, so replaying a batch regenerates exactly its outputs.
struct RecordApplier {
    /// Records dead-lettered, per `RejectReason` (indexed by its position in `allCases`).
    struct RejectCounts: Sendable {
        static let reasons = RejectReason.allCases
        var counts = [Int](repeating: 0, count: RejectReason.allCases.count)
        var total: Int { counts.reduce(0, +) }

        mutating func add(_ reason: RejectReason) {
            counts[Self.reasons.firstIndex(of: reason)!] += 1
        }

        mutating func add(_ other: RejectCounts) {
            for i in counts.indices { counts[i] += other.counts[i] }
        }
    }

    var decoder: MessageDecoder
    /// Dead letters since the last `takeRejectCounts()`.
    private(set) var rejectCounts = RejectCounts()
    /// The customer of the last record applied (nil when it was rejected, a duplicate or a
    /// conflict): what the shard records as changed for `ProcessorStatus`.
    private(set) var lastAppliedCustomer: String?
    /// Whether to keep `lastAppliedCustomer` (off: no per-record work for it).
    var tracksCustomers = false
    /// Scratch for grouping one message's entries.
    private var groups: [(currency: String, first: Int, last: Int)] = []
    private var json: [UInt8] = []
    /// The decoded messages of the group being warmed and their indices in the run (`apply(run:…)`).
    private var runGroup: [Message] = []
    private var runPlaces: [Int] = []

    init(priceBook: PriceBook?) {
        decoder = MessageDecoder(priceBook: priceBook)
    }

    /// Applies `input`, appends the entries it wrote to `entries`, and (when `outputs` is not
    /// nil) its balance changes, alerts and dead letters to `outputs`.
    mutating func apply(
        _ input: InputRecord, engine: inout PartitionEngine, entries: inout [LedgerEntry],
        outputs: inout some OutputSink, wantOutputs: Bool
    ) {
        input.value.withUnsafeBufferPointer { value in
            guard let key = input.key else {
                return apply(
                    RawInput(topic: input.topic, offset: input.offset, key: nil, value: value), engine: &engine,
                    entries: &entries, outputs: &outputs, wantOutputs: wantOutputs)
            }
            key.withUnsafeBufferPointer { key in
                apply(
                    RawInput(topic: input.topic, offset: input.offset, key: key, value: value), engine: &engine,
                    entries: &entries, outputs: &outputs, wantOutputs: wantOutputs)
            }
        }
    }

    /// The same for a record whose bytes are borrowed (the live shards read them in place,
    /// in the consumed batch): nothing is copied unless it is dead-lettered.
    mutating func apply(
        _ input: RawInput, engine: inout PartitionEngine, entries: inout [LedgerEntry],
        outputs: inout some OutputSink, wantOutputs: Bool
    ) {
        precondition(engine.entries.isEmpty && engine.alerts.isEmpty, "engine output not cleared")
        lastAppliedCustomer = nil
        let decoded: Result<Message, Rejection> = decoder.decode(input.value, key: input.key)
        switch decoded {
        case .failure(let rejection):
            reject(.raw(input), rejection, engine: &engine, outputs: &outputs, wantOutputs: wantOutputs)
        case .success(let message):
            let outcome = engine.apply(message)
            finish(message, outcome, input: .raw(input), engine: &engine, entries: &entries, outputs: &outputs, wantOutputs: wantOutputs)
        }
    }

    /// A record of a run given to `apply(run:…)`: borrowed bytes (valid for the whole call)
    /// or a record of a ledger payload.
    enum RunInput {
        case raw(RawInput)
        case record(InputRecord)
    }

    /// Applies `count` consecutive records of one partition — `input(i)` is record `i` —
    /// decoding up to `PartitionEngine.warmGroup` of them, warming the engine on the decoded
    /// messages (`PartitionEngine.warm`, docs/engine.md "Applying in groups"), then applying
    /// them in order. Entries, outputs (in order), reject counts and `lastAppliedCustomer`
    /// come out exactly as from calling `apply` on each record in turn: a record the decoder
    /// rejects first applies the decoded ones before it. `done` is called after each record
    /// with its index, its `lastAppliedCustomer` and the entries it wrote. `input` may be
    /// called more than once for a record (again when it is dead-lettered).
    mutating func apply(
        run count: Int, input: (Int) -> RunInput, engine: inout PartitionEngine, entries: inout [LedgerEntry],
        outputs: inout some OutputSink, wantOutputs: Bool,
        done: (_ index: Int, _ customer: String?, _ entries: ArraySlice<LedgerEntry>) -> Void = { _, _, _ in }
    ) {
        precondition(engine.entries.isEmpty && engine.alerts.isEmpty, "engine output not cleared")
        var group: [Message] = []
        var places: [Int] = []
        // Taken out of `self` while the run uses them (so `self` can be mutated meanwhile):
        // the same buffers every run, no allocation once they have grown.
        swap(&group, &runGroup)
        swap(&places, &runPlaces)
        defer {
            swap(&group, &runGroup)
            swap(&places, &runPlaces)
        }
        func applyGroup(_ applier: inout RecordApplier) {
            guard !group.isEmpty else { return }
            engine.warm(group[...])
            // Moved out from the end of the reversed buffer, as `PartitionEngine.apply(draining:)`
            // does: no Message is copied.
            group.withUnsafeMutableBufferPointer { $0.reverse() }
            var next = 0
            while let message = group.popLast() {
                let index = places[next]
                next += 1
                let before = entries.count
                applier.lastAppliedCustomer = nil
                let outcome = engine.apply(message)
                applier.finish(
                    message, outcome, input: input(index), engine: &engine, entries: &entries, outputs: &outputs,
                    wantOutputs: wantOutputs)
                done(index, applier.lastAppliedCustomer, entries[before...])
            }
            places.removeAll(keepingCapacity: true)
        }
        for i in 0..<count {
            let decoded: Result<Message, Rejection> = Self.withRaw(input(i)) { decoder.decode($0.value, key: $0.key) }
            switch decoded {
            case .failure(let rejection):
                applyGroup(&self)
                lastAppliedCustomer = nil
                reject(input(i), rejection, engine: &engine, outputs: &outputs, wantOutputs: wantOutputs)
                done(i, nil, entries[entries.endIndex...])
            case .success(let message):
                group.append(message)
                places.append(i)
                if group.count == PartitionEngine.warmGroup { applyGroup(&self) }
            }
        }
        applyGroup(&self)
    }

    /// `body` with `input`'s bytes borrowed.
    static func withRaw<R>(_ input: RunInput, _ body: (RawInput) -> R) -> R {
        switch input {
        case .raw(let raw):
            return body(raw)
        case .record(let record):
            return record.value.withUnsafeBufferPointer { value in
                guard let key = record.key else {
                    return body(RawInput(topic: record.topic, offset: record.offset, key: nil, value: value))
                }
                return key.withUnsafeBufferPointer { key in
                    body(RawInput(topic: record.topic, offset: record.offset, key: key, value: value))
                }
            }
        }
    }

    /// A record the decoder rejected.
    private mutating func reject(
        _ input: RunInput, _ rejection: Rejection, engine: inout PartitionEngine, outputs: inout some OutputSink, wantOutputs: Bool
    ) {
        engine.countRejected()
        rejectCounts.add(rejection.reason)
        if wantOutputs {
            Self.withRaw(input) { Self.appendDeadLetter($0, partition: engine.partition, rejection, to: &outputs) }
        }
    }

    /// After `engine.apply(message)` gave `outcome`: counts, dead letter, entries and outputs.
    private mutating func finish(
        _ message: Message, _ outcome: Outcome, input: RunInput, engine: inout PartitionEngine,
        entries: inout [LedgerEntry], outputs: inout some OutputSink, wantOutputs: Bool
    ) {
        switch outcome {
        case .applied: if tracksCustomers { lastAppliedCustomer = message.customer }
        case .duplicate: break
        case .conflict:
            rejectCounts.add(.conflict)
            if wantOutputs {
                Self.withRaw(input) {
                    Self.appendDeadLetter(
                        $0, partition: engine.partition, Rejection(.conflict, "id was applied before with different content"),
                        to: &outputs)
                }
            }
        case .rejected(let rejection):
            rejectCounts.add(rejection.reason)
            if wantOutputs {
                Self.withRaw(input) { Self.appendDeadLetter($0, partition: engine.partition, rejection, to: &outputs) }
            }
        }
        guard !engine.entries.isEmpty || !engine.alerts.isEmpty else { return }
        entries.append(contentsOf: engine.entries)
        if wantOutputs {
            appendBalanceChanges(message, engine: engine, to: &outputs)
            for alert in engine.alerts {
                json.removeAll(keepingCapacity: true)
                alert.appendJSON(to: &json, partition: engine.partition)
                json.withUnsafeBytes { value in
                    Self.withUTF8(alert.customer) { outputs.append(kind: .alert, key: $0, value: value, headers: []) }
                }
            }
        }
        engine.discardOutput()
    }

    /// SPEC §6: one balance change per (customer, currency) the message wrote entries for;
    /// an idle customer's expiry (another customer's entry, written by the partition's
    /// sweep) gets a record of its own per entry, caused by `{"type":"expire","id":<grant>}`.
    private mutating func appendBalanceChanges(_ message: Message, engine: PartitionEngine, to outputs: inout some OutputSink) {
        let entries = engine.entries
        groups.removeAll(keepingCapacity: true)
        for (i, entry) in entries.enumerated() {
            if entry.customer != message.customer {
                let overage = engine.overage(customer: entry.customer, currency: entry.currency)
                appendBalanceChange(
                    customer: entry.customer, currency: entry.currency, available: entry.balance, overage: overage,
                    causeType: "expire", causeID: entry.grant ?? entry.source, entries: entries[i...i],
                    partition: engine.partition, timestamp: entry.timestamp, to: &outputs)
                continue
            }
            if let g = groups.firstIndex(where: { $0.currency == entry.currency }) {
                groups[g].last = i
            } else {
                groups.append((entry.currency, i, i))
            }
        }
        for group in groups {
            let span = entries[group.first...group.last]
            let overage = engine.overage(customer: message.customer, currency: group.currency)
            // Usually every entry of the span is this group's (one currency, no idle expiry
            // in between): then the span itself, with no filtered copy.
            let mixed = span.contains { $0.customer != message.customer || $0.currency != group.currency }
            let own = mixed ? ArraySlice(span.filter { $0.customer == message.customer && $0.currency == group.currency }) : span
            appendBalanceChange(
                customer: message.customer, currency: group.currency, available: own[own.endIndex - 1].balance,
                overage: overage, causeType: message.type.rawValue, causeID: message.id, entries: own,
                partition: engine.partition, timestamp: message.timestamp, to: &outputs)
        }
    }

    mutating func appendBalanceChange(
        customer: String, currency: String, available: Credits, overage: Credits, causeType: String, causeID: String,
        entries: ArraySlice<LedgerEntry>, partition: Int32, timestamp: EventTime, to outputs: inout some OutputSink
    ) {
        json.removeAll(keepingCapacity: true)
        JSONWriter.appendLiteral(#"{"customer":"#, to: &json)
        JSONWriter.appendString(customer, to: &json)
        JSONWriter.appendLiteral(#","currency":"#, to: &json)
        JSONWriter.appendString(currency, to: &json)
        JSONWriter.appendLiteral(#","available":"#, to: &json)
        JSONWriter.appendAmount(available, to: &json)
        JSONWriter.appendLiteral(#","overage":"#, to: &json)
        JSONWriter.appendAmount(overage, to: &json)
        JSONWriter.appendLiteral(#","cause":{"type":"#, to: &json)
        JSONWriter.appendString(causeType, to: &json)
        JSONWriter.appendLiteral(#","id":"#, to: &json)
        JSONWriter.appendString(causeID, to: &json)
        JSONWriter.appendLiteral(#"},"entries":["#, to: &json)
        // Read in place: iterating the slice copies each entry (four string retains).
        entries.withUnsafeBufferPointer { entries in
            for n in entries.indices {
                if n > 0 { json.append(UInt8(ascii: ",")) }
                entries[n].appendJSON(to: &json)
            }
        }
        JSONWriter.appendLiteral(#"],"partition":"#, to: &json)
        JSONWriter.appendInteger(Int64(partition), to: &json)
        JSONWriter.appendLiteral(#","seq":"#, to: &json)
        JSONWriter.appendInteger(Int64(entries[entries.endIndex - 1].seq), to: &json)
        JSONWriter.appendLiteral(#","timestamp":""#, to: &json)
        timestamp.append(to: &json)
        json.append(contentsOf: "\"}".utf8)
        json.withUnsafeBytes { value in
            Self.withUTF8(customer) { outputs.append(kind: .balanceChange, key: $0, value: value, headers: []) }
        }
    }

    /// The dead-letter counts since the last call; resets them.
    mutating func takeRejectCounts() -> RejectCounts {
        defer { rejectCounts = RejectCounts() }
        return rejectCounts
    }

    /// `body` with `s`'s UTF-8 bytes, copying only a string not stored contiguously.
    private static func withUTF8<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        var copy = s
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    static func appendDeadLetter(_ input: RawInput, partition: Int32, _ rejection: Rejection, to outputs: inout some OutputSink) {
        outputs.append(
            kind: .deadLetter, key: input.key.map { UnsafeRawBufferPointer($0) }, value: UnsafeRawBufferPointer(input.value),
            headers: [
                KafkaHeader(name: DeadLetterHeader.reason, value: Array(rejection.reason.rawValue.utf8)),
                KafkaHeader(name: DeadLetterHeader.detail, value: Array(rejection.detail.utf8)),
                KafkaHeader(name: DeadLetterHeader.sourceTopic, value: Array(input.topic.utf8)),
                KafkaHeader(name: DeadLetterHeader.sourcePartition, value: Array(String(partition).utf8)),
                KafkaHeader(name: DeadLetterHeader.sourceOffset, value: Array(String(input.offset).utf8)),
            ])
    }
}
