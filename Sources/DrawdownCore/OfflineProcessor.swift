/// Applies a JSON-lines stream as one partition (what `drawdown process` does), feeding
/// the results to sinks. Pure: the caller does the I/O.
public struct OfflineProcessor {
    public var decoder: MessageDecoder
    public var engine: PartitionEngine

    /// A record that was not applied (or a `conflict` resend): 1-based line, reason, detail.
    public struct Rejected {
        public var line: Int
        public var rejection: Rejection
        public var raw: UnsafeBufferPointer<UInt8>
    }

    public init(priceBook: PriceBook?, config: EngineConfig = EngineConfig()) {
        decoder = MessageDecoder(priceBook: priceBook)
        engine = PartitionEngine(partition: 0, config: config)
    }

    /// Runs every line of `input`. `output` is called after each line that wrote entries or
    /// alerts (and the engine's buffers are then cleared); `rejected` for each reject.
    /// Decoded messages are applied in groups of `PartitionEngine.warmGroup`
    /// (`apply(draining:)`, docs/engine.md "Applying in groups"); a record the decoder
    /// rejects first applies the group before it, so callbacks come in line order as if each
    /// line were applied alone.
    public mutating func run(
        _ input: UnsafeBufferPointer<UInt8>,
        output: (_ entries: [LedgerEntry], _ alerts: [Alert]) -> Void,
        rejected: (Rejected) -> Void
    ) {
        var lineNumber = 0
        var group: [Message] = []
        var places: [(line: Int, raw: UnsafeBufferPointer<UInt8>)] = []
        group.reserveCapacity(PartitionEngine.warmGroup)
        places.reserveCapacity(PartitionEngine.warmGroup)
        func applyGroup() {
            guard !group.isEmpty else { return }
            var next = 0
            engine.apply(draining: &group) { outcome, engine in
                let place = places[next]
                next += 1
                switch outcome {
                case .applied, .duplicate: break
                case .conflict:
                    rejected(
                        Rejected(
                            line: place.line, rejection: Rejection(.conflict, "id was applied before with different content"),
                            raw: place.raw))
                case .rejected(let rejection):
                    rejected(Rejected(line: place.line, rejection: rejection, raw: place.raw))
                }
                if !engine.entries.isEmpty || !engine.alerts.isEmpty {
                    output(engine.entries, engine.alerts)
                    engine.discardOutput()
                }
            }
            places.removeAll(keepingCapacity: true)
        }
        JSONLines.forEachLine(in: input) { line in
            lineNumber += 1
            guard !JSONLines.isBlank(line) else { return }
            switch decoder.decode(line) {
            case .failure(let rejection):
                applyGroup()
                engine.countRejected()
                rejected(Rejected(line: lineNumber, rejection: rejection, raw: line))
            case .success(let message):
                group.append(message)
                places.append((lineNumber, line))
                if group.count == PartitionEngine.warmGroup { applyGroup() }
            }
        }
        applyGroup()
    }
}

/// JSON-lines helpers: split on `\n`; a line holding only whitespace is skipped (SPEC §1).
public enum JSONLines {
    public static func forEachLine(in input: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard let base = input.baseAddress else { return }
        var start = 0
        let count = input.count
        let buffer = UnsafeBufferPointer(start: base, count: count)
        while start < count {
            var end = start
            while end + 8 <= count, !SWAR.has(SWAR.load(buffer, at: end), 0x0A) { end += 8 }
            while end < count, base[end] != 0x0A { end += 1 }
            body(UnsafeBufferPointer(start: base + start, count: end - start))
            start = end + 1
        }
    }

    public static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in line where !(b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A) { return false }
        return true
    }
}
