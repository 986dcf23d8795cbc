/// Overlapping the cache misses of a few messages (docs/engine.md, "Applying in groups").
///
/// At 100k customers a usage event misses the cache four to six times (customer index slot,
/// customer record, its currency record, a grant, a dedupe slot), one after the other,
/// because each load needs the one before. `warm` reads the same memory for a group of
/// upcoming messages phase by phase — every index and dedupe slot, then every customer
/// record, then their first currency records and first grants — so that the
/// loads of one phase are independent and in flight together, and `apply` then finds them
/// in the cache. It is plain Swift (loads, no prefetch instruction) and changes no state
/// that any output depends on: the values read only feed `warmSink`.
extension PartitionEngine {
    /// Messages warmed at a time: enough independent loads per phase to hide most of one
    /// memory latency, few enough that the first of the group is still cached when applied.
    public static let warmGroup = 8

    /// Reads the memory that applying `messages` (in order, next) will touch first. Only a
    /// speed hint: the result of every later `apply` is the same with or without it, and
    /// messages without decoder-computed key hashes are skipped.
    public mutating func warm(_ messages: ArraySlice<Message>) {
        var sink = warmSink
        // Phase 1: where the customer and the dedupe lookups start.
        for i in messages.indices {
            guard let hashes = messages[i].keyHashes else { continue }
            sink &+= customerIndex.touch(hashes.customer) &+ dedupe.touch(hashes.fingerprint)
        }
        // The numbers the later phases read, on the stack: an array here cost a uniqueness
        // check per append and a generic `removeAll` per group (~100 instructions a message).
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 3 * messages.count) { numbers in
            // Phase 2: the customer records (index slots now cached). The candidate is not
            // confirmed against the id: `apply` does that, and a wrong one only wastes a load.
            var count = 0
            for i in messages.indices {
                guard let hashes = messages[i].keyHashes, let c = customerIndex.candidate(hashes.customer) else { continue }
                numbers[count] = c
                count += 1
            }
            // Phase 3: each customer's first currency record (its number is in the record, now
            // cached) and the first grant it would draw from (read from its draw-order
            // buffer); -1 for none, in pairs after the customers.
            for n in 0..<count {
                let record = Int(numbers[n])
                numbers[count + 2 * n] = customers[record].firstCurrency
                numbers[count + 2 * n + 1] = customers[record].drawOrder.first ?? -1
            }
            // Phase 4: those records and grants.
            for n in 0..<count {
                let r = numbers[count + 2 * n]
                let g = numbers[count + 2 * n + 1]
                if r >= 0 { sink &+= UInt64(truncatingIfNeeded: currencies[Int(r)].available.nanos) }
                if g >= 0 { sink &+= UInt64(truncatingIfNeeded: grants[Int(g)].remaining.nanos) }
            }
        }
        warmSink = sink
    }

    /// Applies `messages` in order, warming each group of `group` messages first; `body` gets
    /// each message's index and outcome, with the engine (to read or clear its output) — the
    /// same as calling `apply` on each in turn.
    public mutating func apply(
        _ messages: [Message], group: Int = PartitionEngine.warmGroup,
        _ body: (_ index: Int, _ outcome: Outcome, _ engine: inout PartitionEngine) -> Void
    ) {
        let group = max(1, group)
        var start = messages.startIndex
        while start < messages.endIndex {
            let end = min(start + group, messages.endIndex)
            warm(messages[start..<end])
            for i in start..<end {
                // Each message is copied out of the array for the call (an outlined copy and
                // destroy, ~330 instructions): `apply(draining:_:)` avoids that.
                let outcome = apply(messages[i])
                body(i, outcome, &self)
            }
            start = end
        }
    }

    /// Warms and applies all of `messages` (a group the caller filled, e.g. the next
    /// `warmGroup` decoded records) in order and leaves the array empty, keeping its capacity;
    /// `body` gets each outcome with the engine. The messages are moved out, not copied.
    public mutating func apply(
        draining messages: inout [Message], _ body: (_ outcome: Outcome, _ engine: inout PartitionEngine) -> Void
    ) {
        warm(messages[...])
        // Reversed through the buffer, whose swaps move elements (the array's own `reverse`
        // copied each Message), then popped from the end: no Message is copied.
        messages.withUnsafeMutableBufferPointer { $0.reverse() }
        while let message = messages.popLast() {
            let outcome = apply(message)
            body(outcome, &self)
        }
    }
}
