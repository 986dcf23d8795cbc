@testable import DrawdownCore
import Testing

/// `PartitionEngine.apply(_:group:_:)` and `apply(draining:_:)` warm each group of messages
/// before applying it; warming is only a speed hint, so outcomes, entries, alerts, state and
/// snapshot must be exactly those of calling `apply(_:)` on each message in turn.
@Suite struct WarmApplyTests {
    struct Run: Equatable {
        var outcomes: [Outcome] = []
        var entries: [LedgerEntry] = []
        var alerts: [Alert] = []
        var state: [UInt8] = []
        var snapshot: [UInt8] = []
    }

    static func decoded(_ records: [(bytes: [UInt8], record: WorkloadRecord)]) -> [Message] {
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        return records.compactMap { bytes, _ in
            guard case .success(let message) = bytes.withUnsafeBufferPointer({ decoder.decode($0) }) else { return nil }
            return message
        }
    }

    static func one(_ messages: [Message], config: EngineConfig) -> Run {
        var engine = PartitionEngine(config: config)
        var run = Run()
        for message in messages {
            run.outcomes.append(engine.apply(message))
            let output = engine.takeOutput()
            run.entries += output.entries
            run.alerts += output.alerts
        }
        run.state = StateDocument.render([engine])
        run.snapshot = engine.snapshot()
        return run
    }

    static func warmed(_ messages: [Message], group: Int = PartitionEngine.warmGroup, config: EngineConfig) -> Run {
        var engine = PartitionEngine(config: config)
        var run = Run()
        var expected = messages.startIndex
        engine.apply(messages, group: group) { index, outcome, engine in
            #expect(index == expected)
            expected += 1
            run.outcomes.append(outcome)
            let output = engine.takeOutput()
            run.entries += output.entries
            run.alerts += output.alerts
        }
        #expect(expected == messages.endIndex)
        run.state = StateDocument.render([engine])
        run.snapshot = engine.snapshot()
        return run
    }

    @Test(arguments: [UInt64(1), 7, 42])
    func warmedApplyMatchesOneByOne(seed: UInt64) {
        // Few customers and a short window: resends, conflicts, too-late events, expiries and
        // dedupe sweeps all happen inside groups.
        var spec = WorkloadSpec(seed: seed, customers: 30, messages: 4_000)
        spec.spanNanos = 4_000 * 60 * 1_000_000_000
        let messages = Self.decoded(Workload.records(spec))
        for config in [EngineConfig(), EngineConfig(dedupeWindow: 3_600 * 1_000_000_000, expiryGrace: 60 * 1_000_000_000)] {
            let a = Self.one(messages, config: config)
            let b = Self.warmed(messages, config: config)
            #expect(a.outcomes == b.outcomes, "seed \(seed)")
            #expect(a.entries == b.entries, "seed \(seed)")
            #expect(a.alerts == b.alerts, "seed \(seed)")
            #expect(a.state == b.state, "seed \(seed)")
            #expect(a.snapshot == b.snapshot, "seed \(seed)")
        }
    }

    static func drained(_ messages: [Message], group: Int, config: EngineConfig) -> Run {
        var engine = PartitionEngine(config: config)
        var run = Run()
        var pending: [Message] = []
        for start in stride(from: 0, to: messages.count, by: group) {
            pending.append(contentsOf: messages[start..<min(start + group, messages.count)])
            engine.apply(draining: &pending) { outcome, engine in
                run.outcomes.append(outcome)
                let output = engine.takeOutput()
                run.entries += output.entries
                run.alerts += output.alerts
            }
            #expect(pending.isEmpty)
        }
        run.state = StateDocument.render([engine])
        run.snapshot = engine.snapshot()
        return run
    }

    @Test(arguments: [1, 3, 8, 13])
    func drainedApplyMatchesOneByOne(group: Int) {
        var spec = WorkloadSpec(seed: 5, customers: 30, messages: 3_000)
        spec.spanNanos = 3_000 * 60 * 1_000_000_000
        let messages = Self.decoded(Workload.records(spec))
        let config = EngineConfig(dedupeWindow: 3_600 * 1_000_000_000, expiryGrace: 60 * 1_000_000_000)
        #expect(Self.one(messages, config: config) == Self.drained(messages, group: group, config: config))
        #expect(Self.one(messages, config: config) == Self.warmed(messages, group: group, config: config))
    }

    @Test func warmedApplyMatchesOnTheBenchmarkMix() {
        let messages = Self.decoded(Workload.records(WorkloadSpec.benchmark(seed: 3, messages: 20_000, customers: 2_000)))
        #expect(Self.one(messages, config: EngineConfig()) == Self.warmed(messages, config: EngineConfig()))
    }

    /// Messages built by hand (no decoder key hashes), changed after decoding (hashes
    /// dropped) and slices not starting at 0 take the same path.
    @Test func messagesWithoutDecoderHashesAndSlices() {
        var messages = Self.decoded(Workload.records(WorkloadSpec(seed: 9, customers: 12, messages: 600)))
        for i in stride(from: 0, to: messages.count, by: 5) {
            messages[i].customer = messages[i].customer + "-x"
        }
        messages.append(
            Message(
                id: "hand-1", customer: "cust-hand", timestamp: messages.last!.timestamp, contentHash: 1,
                body: .grant(GrantTerms(amount: Credits(units: 5), effectiveAt: messages.last!.timestamp))))
        #expect(Self.one(messages, config: EngineConfig()) == Self.warmed(messages, config: EngineConfig()))
        let tail = Array(messages[3...])
        #expect(Self.one(tail, config: EngineConfig()) == Self.warmed(tail, config: EngineConfig()))
        #expect(Self.warmed([], config: EngineConfig()) == Self.one([], config: EngineConfig()))
    }

    /// `OfflineProcessor.run` (grouped) gives the same output calls, rejects (line, reason,
    /// detail) and final state as applying each line alone, with malformed and blank lines
    /// between groups.
    @Test func offlineProcessorMatchesLineByLine() {
        var spec = WorkloadSpec(seed: 13, customers: 25, messages: 3_000)
        spec.spanNanos = 3_000 * 60 * 1_000_000_000
        var input: [UInt8] = []
        for (n, (bytes, _)) in Workload.records(spec).enumerated() {
            input += bytes + [0x0A]
            if n % 97 == 5 { input += Array("   \n{\"id\":\n".utf8) }  // a blank line, then a malformed one
        }
        typealias Event = (kind: String, line: Int, entries: [LedgerEntry], alerts: [Alert], detail: String)
        func same(_ a: [Event], _ b: [Event]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { $0.kind == $1.kind && $0.line == $1.line && $0.entries == $1.entries && $0.alerts == $1.alerts && $0.detail == $1.detail }
        }
        var grouped: [Event] = []
        var processor = OfflineProcessor(priceBook: Workload.priceBook)
        input.withUnsafeBufferPointer { buffer in
            processor.run(buffer) { entries, alerts in
                grouped.append(("output", 0, entries, alerts, ""))
            } rejected: { reject in
                grouped.append(("reject", reject.line, [], [], "\(reject.rejection.reason.rawValue): \(reject.rejection.detail)"))
            }
        }
        // Reference: the loop `run` had before it grouped messages.
        var single: [Event] = []
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var engine = PartitionEngine()
        var lineNumber = 0
        input.withUnsafeBufferPointer { buffer in
            JSONLines.forEachLine(in: buffer) { line in
                lineNumber += 1
                guard !JSONLines.isBlank(line) else { return }
                switch decoder.decode(line) {
                case .failure(let rejection):
                    engine.countRejected()
                    single.append(("reject", lineNumber, [], [], "\(rejection.reason.rawValue): \(rejection.detail)"))
                case .success(let message):
                    switch engine.apply(message) {
                    case .applied, .duplicate: break
                    case .conflict: single.append(("reject", lineNumber, [], [], "conflict: id was applied before with different content"))
                    case .rejected(let rejection):
                        single.append(("reject", lineNumber, [], [], "\(rejection.reason.rawValue): \(rejection.detail)"))
                    }
                    if !engine.entries.isEmpty || !engine.alerts.isEmpty {
                        single.append(("output", 0, engine.entries, engine.alerts, ""))
                        engine.discardOutput()
                    }
                }
            }
        }
        #expect(grouped.count > 2_000)
        #expect(grouped.contains { $0.kind == "reject" })
        #expect(same(grouped, single))
        #expect(StateDocument.render([processor.engine]) == StateDocument.render([engine]))
        #expect(processor.engine.snapshot() == engine.snapshot())
    }

    /// Warming alone changes nothing the engine reports.
    @Test func warmChangesNoState() {
        let messages = Self.decoded(Workload.records(WorkloadSpec(seed: 11, customers: 20, messages: 1_000)))
        var engine = PartitionEngine()
        for message in messages.prefix(500) { _ = engine.apply(message) }
        engine.discardOutput()
        let before = (StateDocument.render([engine]), engine.snapshot())
        engine.warm(messages[500...])
        #expect(StateDocument.render([engine]) == before.0)
        #expect(engine.snapshot() == before.1)
    }
}
