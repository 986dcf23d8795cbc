import Dispatch
import DrawdownCore
import DrawdownLedger

/// Charges, overage and available balance of one customer in one currency.
public struct ReplayAmounts: Sendable, Equatable {
    /// What the range's usage events cost (draws plus overage), as a positive amount.
    public var charges: Credits = .zero
    /// Overage total at the end of the range.
    public var overage: Credits = .zero
    /// Available balance at the end of the range.
    public var available: Credits = .zero

    public init(charges: Credits = .zero, overage: Credits = .zero, available: Credits = .zero) {
        self.charges = charges
        self.overage = overage
        self.available = available
    }

    /// `self − other`, field by field.
    public func minus(_ other: ReplayAmounts) -> ReplayAmounts {
        ReplayAmounts(charges: charges - other.charges, overage: overage - other.overage, available: available - other.available)
    }

    public var isZero: Bool { charges.isZero && overage.isZero && available.isZero }

    mutating func add(_ other: ReplayAmounts) {
        charges += other.charges
        overage += other.overage
        available += other.available
    }
}

/// One customer and currency: what the ledger committed and what the replay computed.
public struct ReplayCustomerRow: Sendable, Equatable {
    public var customer: String
    public var currency: String
    public var partition: Int32
    public var committed = ReplayAmounts()
    public var recomputed = ReplayAmounts()
    /// recomputed − committed.
    public var difference: ReplayAmounts { recomputed.minus(committed) }
}

/// The totals of one currency over every customer of the report.
public struct ReplayCurrencyTotal: Sendable, Equatable {
    public var currency: String
    public var committed = ReplayAmounts()
    public var recomputed = ReplayAmounts()
    public var difference: ReplayAmounts { recomputed.minus(committed) }
}

/// A usage event whose charge in one currency changed, with where it came from.
public struct ReplayEventChange: Sendable, Equatable {
    public var customer: String
    public var id: String
    public var currency: String
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var batch: UInt64
    public var committed: Credits
    public var recomputed: Credits
    public var difference: Credits { recomputed - committed }
}

/// One `adjust` a correction writes: to a grant's remaining amount, or (grant nil) to the overage.
public struct ReplayAdjustment: Sendable, Equatable {
    public var partition: Int32
    public var customer: String
    public var currency: String
    public var grant: String?
    public var amount: Credits
}

/// How far a replay got (for progress displays).
public struct ReplayProgress: Sendable {
    public var batchesDone: Int
    public var batchesTotal: Int
    public var records: Int
    public var seconds: Double
}

/// What a replay found: the report and, when the range reaches the ledger's end, the
/// correction that `apply` would write.
public struct ReplayResult: Sendable {
    public var fromBatch: UInt64
    public var throughBatch: UInt64
    public var lastLedgerBatch: UInt64
    public var batchesReplayed = 0
    public var recordsReplayed = 0
    public var snapshotBatch: UInt64?
    /// Every customer and currency the range charged or whose end state differs, in
    /// partition order, then the order customers first appeared, then currency.
    public var rows: [ReplayCustomerRow] = []
    public var totals: [ReplayCurrencyTotal] = []
    /// The events whose charge changed most (largest |difference| first).
    public var eventsChangedMost: [ReplayEventChange] = []
    /// How many (event, currency) charges changed.
    public var eventsChanged = 0
    public var correctionID: String
    public var adjustments: [ReplayAdjustment] = []
    /// Why the correction cannot be applied (empty when it can).
    public var unappliable: [String] = []
    /// Seconds to restore the state before `fromBatch` (snapshot plus batches), and to replay the range.
    public var restoreSeconds = 0.0
    public var replaySeconds = 0.0
    /// Per partition with adjustments: the `adjust` entries, as the correction batch holds them.
    var correctionSections: [PartitionSection] = []
    /// The committed engines after the range with the adjustments applied.
    var correctedEngines: [PartitionEngine] = []

    /// True when nothing differs: no charge, balance or overage, no event.
    public var hasNoDifferences: Bool {
        adjustments.isEmpty && eventsChanged == 0 && rows.allSatisfy { $0.difference.isZero }
    }
}

/// `drawdown replay`: re-rates a range of the ledger's recorded inputs with a price book and
/// compares the result with what the ledger committed (docs/replay.md).
public enum Replay {
    /// Restores the state before batch `fromBatch` (snapshot plus ledger, corrections included),
    /// then rolls two copies of it over batches `fromBatch…throughBatch`: the committed one
    /// re-applies the ledger as written (checked entry by entry), the recomputed one applies the
    /// same recorded inputs, in the same order, with `replaySettings`' price book. Correction
    /// batches in the range count on the committed side only.
    public static func run(
        ledger: LedgerStore, snapshots: SnapshotStore?, settings: EngineSettings, replaySettings: EngineSettings,
        fromBatch: UInt64, throughBatch: UInt64, topEvents: Int = 20, progress: ((ReplayProgress) -> Void)? = nil
    ) throws -> ReplayResult {
        let last = ledger.lastBatchNumber
        guard fromBatch >= 1, fromBatch <= last + 1 else {
            throw ReplayError.refused("start batch \(fromBatch) is outside the ledger (batches 1…\(last))")
        }
        let through = min(throughBatch, last)
        var result = ReplayResult(
            fromBatch: fromBatch, throughBatch: through, lastLedgerBatch: last,
            correctionID: CorrectionRecord.identity(fromBatch: fromBatch, throughBatch: through, prices: replaySettings.priceBookJSON))

        let started = DispatchTime.now().uptimeNanoseconds
        var committed = try BatchReplayer.restore(
            ledger: ledger, snapshots: snapshots, settings: settings, outputsAfterBatch: .max, throughBatch: fromBatch - 1)
        try committed.replay(through: fromBatch - 1, outputsAfterBatch: .max)
        result.snapshotBatch = committed.rebuilt.snapshotBatch
        let restored = DispatchTime.now().uptimeNanoseconds
        result.restoreSeconds = Double(restored - started) / 1e9

        let recomputing = RecomputedSide(engines: committed.engines, settings: replaySettings)
        var tally = ChargeTally(topEvents: topEvents)
        var maxEventTime: Int64?
        let total = through >= fromBatch ? Int(through - fromBatch + 1) : 0
        if total > 0 {
            let reader = ledger.batches(from: fromBatch)
            var committedCharges: [[Charge]] = []
            while let batch = try reader.next(), batch.number <= through {
                if let t = batch.eventTime { maxEventTime = max(maxEventTime ?? t.maxNanos, t.maxNanos) }
                if batch.kind == .entries {
                    let payload = try LedgerReplay.decodePayload(batch)
                    // The recomputed side runs on another thread while this one re-applies the
                    // committed side: they share nothing until both are done with the batch.
                    let group = DispatchGroup()
                    DispatchQueue.global().async(group: group) { recomputing.apply(payload) }
                    committedCharges.removeAll(keepingCapacity: true)
                    do {
                        try committed.apply(batch, payload: payload, wantOutputs: false) { _, _, entries in
                            committedCharges.append(Charge.of(entries))
                        }
                    } catch {
                        group.wait()
                        throw error
                    }
                    group.wait()
                    var n = 0
                    for section in payload.sections {
                        for input in section.inputs {
                            tally.compare(
                                committedCharges[n], recomputing.charges[n], input: input, partition: section.partition,
                                batch: batch.number)
                            n += 1
                        }
                    }
                    result.recordsReplayed += n
                } else {
                    try committed.apply(batch, wantOutputs: false)
                }
                result.batchesReplayed += 1
                if let progress {
                    progress(ReplayProgress(
                        batchesDone: result.batchesReplayed, batchesTotal: total, records: result.recordsReplayed,
                        seconds: Double(DispatchTime.now().uptimeNanoseconds - restored) / 1e9))
                }
                if batch.number == through { break }
            }
        }
        result.replaySeconds = Double(DispatchTime.now().uptimeNanoseconds - restored) / 1e9

        let timestamp = EventTime(nanos: maxEventTime ?? ledger.maxEventTimeNanos ?? 0)
        compareStates(committed: committed.engines, recomputed: recomputing.engines, tally: &tally, timestamp: timestamp, into: &result)
        result.eventsChangedMost = tally.top()
        result.eventsChanged = tally.changed
        if through < last {
            result.unappliable.insert(
                "the range ends at batch \(through) but the ledger goes on to batch \(last): a correction is applied at the "
                    + "ledger's end and can only cover a range that reaches it (omit --to)", at: 0)
        }
        return result
    }

    /// Builds the rows and totals from the charges and the two end states, and plans (and
    /// tries, on copies of the committed engines) the adjustments that turn one into the other.
    private static func compareStates(
        committed: [Int32: PartitionEngine], recomputed: [Int32: PartitionEngine], tally: inout ChargeTally,
        timestamp: EventTime, into result: inout ReplayResult
    ) {
        for p in Set(committed.keys).union(recomputed.keys).sorted() {
            let c = committed[p].map { Dictionary(($0.allCustomerViews()).map { ($0.customer, $0) }, uniquingKeysWith: { a, _ in a }) } ?? [:]
            let r = recomputed[p]?.allCustomerViews() ?? []
            var corrected = committed[p] ?? PartitionEngine(partition: p, config: recomputed[p]!.config)
            var order = committed[p]?.allCustomerViews().map(\.customer) ?? []
            for view in r where c[view.customer] == nil { order.append(view.customer) }
            let rByCustomer = Dictionary(r.map { ($0.customer, $0) }, uniquingKeysWith: { a, _ in a })
            for customer in order {
                let cv = c[customer], rv = rByCustomer[customer]
                var currencies = (cv?.currencies.map(\.currency) ?? [])
                for k in rv?.currencies ?? [] where !currencies.contains(k.currency) { currencies.append(k.currency) }
                for currency in currencies {
                    let cc = cv?.currencies.first { $0.currency == currency }
                    let rc = rv?.currencies.first { $0.currency == currency }
                    let key = ChargeKey(customer: customer, currency: currency)
                    var row = ReplayCustomerRow(customer: customer, currency: currency, partition: p)
                    let charges = tally.byCustomer[key]
                    row.committed = ReplayAmounts(
                        charges: charges?.committed ?? .zero, overage: cc?.overage ?? .zero, available: cc?.available ?? .zero)
                    row.recomputed = ReplayAmounts(
                        charges: charges?.recomputed ?? .zero, overage: rc?.overage ?? .zero, available: rc?.available ?? .zero)
                    guard charges != nil || !row.difference.isZero else { continue }
                    result.rows.append(row)
                    if let t = result.totals.firstIndex(where: { $0.currency == currency }) {
                        result.totals[t].committed.add(row.committed)
                        result.totals[t].recomputed.add(row.recomputed)
                    } else {
                        result.totals.append(ReplayCurrencyTotal(currency: currency, committed: row.committed, recomputed: row.recomputed))
                    }
                    planAdjustments(
                        partition: p, customer: customer, currency: currency, committed: cc, recomputed: rc, engine: &corrected,
                        timestamp: timestamp, into: &result)
                }
            }
            let entries = corrected.entries
            if !entries.isEmpty { result.correctionSections.append(PartitionSection(partition: p, inputs: [], entries: entries)) }
            corrected.discardOutput()
            result.correctedEngines.append(corrected)
        }
        result.totals.sort { Array($0.currency.utf8).lexicographicallyPrecedes(Array($1.currency.utf8)) }
    }

    /// The adjustments of one customer and currency: each grant's remaining amount, then the
    /// overage, brought to the recomputed values; applied to `engine` (the committed state) to
    /// check that the engine accepts them and that the available balance then agrees too.
    private static func planAdjustments(
        partition: Int32, customer: String, currency: String, committed: CustomerView.Currency?,
        recomputed: CustomerView.Currency?, engine: inout PartitionEngine, timestamp: EventTime, into result: inout ReplayResult
    ) {
        var wanted: [(grant: String?, amount: Credits)] = []
        var grantIDs = committed?.grants.map(\.id) ?? []
        for g in recomputed?.grants ?? [] where !grantIDs.contains(g.id) { grantIDs.append(g.id) }
        for id in grantIDs {
            let before = committed?.grants.first { $0.id == id }?.remaining ?? .zero
            let after = recomputed?.grants.first { $0.id == id }?.remaining ?? .zero
            if before != after { wanted.append((id, after - before)) }
        }
        let overage = (recomputed?.overage ?? .zero) - (committed?.overage ?? .zero)
        if !overage.isZero { wanted.append((nil, overage)) }
        for (grant, amount) in wanted {
            result.adjustments.append(
                ReplayAdjustment(partition: partition, customer: customer, currency: currency, grant: grant, amount: amount))
            let outcome = engine.adjust(
                customer: customer, currency: currency, grant: grant, amount: amount, source: result.correctionID, timestamp: timestamp)
            if case .failure(let error) = outcome {
                result.unappliable.append("\(customer) \(currency)\(grant.map { " grant \($0)" } ?? " overage"): \(error)")
            }
        }
        guard !wanted.isEmpty, let recomputed else { return }
        let now = engine.balances(customer: customer).first { $0.currency == currency }?.available ?? .zero
        if now != recomputed.available {
            result.unappliable.append(
                "\(customer) \(currency): available would be \(now) after the correction, not the recomputed \(recomputed.available) "
                    + "(a grant's status differs between the committed and the recomputed state)")
        }
    }
}

/// The recomputed side of a replay: the engines after the batches so far, applied with the
/// replay's price book, and the charges of each input of the last batch.
///
/// `@unchecked Sendable`: `Replay.run` hands it to one worker at a time for one batch and
/// waits for that worker (a `DispatchGroup`) before it reads or hands it over again, so it is
/// never touched by two threads at once.
final class RecomputedSide: @unchecked Sendable {
    var engines: [Int32: PartitionEngine]
    /// Per input of the last batch, in payload order: what it cost.
    private(set) var charges: [[Charge]] = []
    private var applier: RecordApplier
    private let config: EngineConfig
    private var scratch: [LedgerEntry] = []
    private var noOutputs: [OutputRecord] = []

    init(engines: [Int32: PartitionEngine], settings: EngineSettings) {
        self.engines = engines
        self.applier = RecordApplier(priceBook: settings.priceBook)
        self.config = settings.config
    }

    func apply(_ payload: BatchPayload) {
        charges.removeAll(keepingCapacity: true)
        for section in payload.sections {
            var engine = engines.removeValue(forKey: section.partition) ?? PartitionEngine(partition: section.partition, config: config)
            scratch.removeAll(keepingCapacity: true)
            let inputs = section.inputs
            var charges = self.charges
            self.charges = []
            applier.apply(
                run: inputs.count, input: { .record(inputs[$0]) }, engine: &engine, entries: &scratch, outputs: &noOutputs,
                wantOutputs: false
            ) { _, _, written in
                charges.append(Charge.of(written))
            }
            self.charges = charges
            engines[section.partition] = engine
        }
    }
}

/// What one input cost one customer in one currency (draws plus overage).
struct Charge: Equatable {
    var customer: String
    var currency: String
    var amount: Credits

    static func of(_ entries: ArraySlice<LedgerEntry>) -> [Charge] {
        var charges: [Charge] = []
        for e in entries where e.type == .draw || e.type == .overage {
            let amount = e.type == .draw ? Credits.zero - e.amount : e.amount
            if let i = charges.firstIndex(where: { $0.customer == e.customer && $0.currency == e.currency }) {
                charges[i].amount += amount
            } else {
                charges.append(Charge(customer: e.customer, currency: e.currency, amount: amount))
            }
        }
        return charges
    }
}

struct ChargeKey: Hashable {
    var customer: String
    var currency: String
}

/// Sums of charges per customer and currency on both sides, and the events that changed most.
struct ChargeTally {
    let topEvents: Int
    var byCustomer: [ChargeKey: (committed: Credits, recomputed: Credits)] = [:]
    var changed = 0
    private var candidates: [ReplayEventChange] = []

    init(topEvents: Int) { self.topEvents = max(0, topEvents) }

    mutating func compare(_ committed: [Charge], _ recomputed: [Charge], input: InputRecord, partition: Int32, batch: UInt64) {
        guard !committed.isEmpty || !recomputed.isEmpty else { return }
        if committed == recomputed {
            for c in committed { add(c, committed: c.amount, recomputed: c.amount) }
            return
        }
        var pairs = committed.map { ($0, $0.amount, Credits.zero) }
        for r in recomputed {
            if let i = pairs.firstIndex(where: { $0.0.customer == r.customer && $0.0.currency == r.currency }) {
                pairs[i].2 = r.amount
            } else {
                pairs.append((r, .zero, r.amount))
            }
        }
        for (c, before, after) in pairs {
            add(c, committed: before, recomputed: after)
            guard before != after else { continue }
            changed += 1
            guard topEvents > 0 else { continue }
            candidates.append(
                ReplayEventChange(
                    customer: c.customer, id: Self.eventID(input) ?? "", currency: c.currency, topic: input.topic,
                    partition: partition, offset: input.offset, batch: batch, committed: before, recomputed: after))
            if candidates.count >= 4 * topEvents + 64 { candidates = top() }
        }
    }

    private mutating func add(_ c: Charge, committed: Credits, recomputed: Credits) {
        let key = ChargeKey(customer: c.customer, currency: c.currency)
        let sum = byCustomer[key] ?? (.zero, .zero)
        byCustomer[key] = (sum.committed + committed, sum.recomputed + recomputed)
    }

    /// Largest |difference| first; ties in ledger order.
    func top() -> [ReplayEventChange] {
        func magnitude(_ c: Credits) -> Credits { c.isNegative ? .zero - c : c }
        return Array(
            candidates.sorted {
                let a = magnitude($0.difference), b = magnitude($1.difference)
                if a != b { return a > b }
                return ($0.batch, $0.partition, $0.offset, $0.currency) < ($1.batch, $1.partition, $1.offset, $1.currency)
            }.prefix(topEvents))
    }

    /// The message's `id`, read from its JSON (the entries carry it as `source`, but an event
    /// that lost all its entries has none).
    static func eventID(_ input: InputRecord) -> String? {
        guard case .object(let fields)? = try? JSONValue.parse(input.value), case .string(let id)? = fields["id"] else { return nil }
        return id
    }
}
