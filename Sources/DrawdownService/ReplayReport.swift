import DrawdownCore
import Foundation

/// The report of `drawdown replay`: JSON (`--report FILE`, docs/replay.md) and a table for
/// people (standard output).
extension ReplayResult {
    public func reportJSON(mode: String, applied: ReplayApplied?) -> [UInt8] {
        var out: [UInt8] = []
        func key(_ name: String) {
            if let last = out.last, last != UInt8(ascii: "{"), last != UInt8(ascii: "[") { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(name, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        func string(_ name: String, _ value: String?) {
            key(name)
            if let value { JSONWriter.appendString(value, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        func number<T: BinaryInteger>(_ name: String, _ value: T) {
            key(name)
            out.append(contentsOf: String(value).utf8)
        }
        func amount(_ name: String, _ value: Credits) {
            key(name)
            JSONWriter.appendAmount(value, to: &out)
        }
        func amounts(_ name: String, _ a: ReplayAmounts) {
            key(name)
            out.append(UInt8(ascii: "{"))
            amount("charges", a.charges)
            amount("overage", a.overage)
            amount("available", a.available)
            out.append(UInt8(ascii: "}"))
        }
        func array<T>(_ name: String, _ items: [T], _ body: (T) -> Void) {
            key(name)
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "{"))
                body(item)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "{"))
        string("mode", mode)
        number("from_batch", fromBatch)
        number("through_batch", throughBatch)
        number("batches", batchesReplayed)
        number("records", recordsReplayed)
        string("correction_id", correctionID)
        key("differences")
        out.append(contentsOf: (hasNoDifferences ? "false" : "true").utf8)
        array("customers", rows) { row in
            string("customer", row.customer)
            string("currency", row.currency)
            number("partition", row.partition)
            amounts("committed", row.committed)
            amounts("recomputed", row.recomputed)
            amounts("difference", row.difference)
        }
        array("totals", totals) { t in
            string("currency", t.currency)
            amounts("committed", t.committed)
            amounts("recomputed", t.recomputed)
            amounts("difference", t.difference)
        }
        number("events_changed", eventsChanged)
        array("events_changed_most", eventsChangedMost) { e in
            string("customer", e.customer)
            string("id", e.id)
            string("currency", e.currency)
            string("topic", e.topic)
            number("partition", e.partition)
            number("offset", e.offset)
            number("batch", e.batch)
            amount("committed", e.committed)
            amount("recomputed", e.recomputed)
            amount("difference", e.difference)
        }
        array("corrections", adjustments) { a in
            number("partition", a.partition)
            string("customer", a.customer)
            string("currency", a.currency)
            string("grant", a.grant)
            amount("amount", a.amount)
        }
        key("unappliable")
        out.append(UInt8(ascii: "["))
        for (i, reason) in unappliable.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(reason, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        key("applied")
        if let applied {
            out.append(UInt8(ascii: "{"))
            number("batch", applied.batch)
            string("id", applied.id)
            number("entries", applied.entries)
            number("balance_changes", applied.outputs)
            out.append(UInt8(ascii: "}"))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    /// A readable summary: the range, the customers whose charges or balances differ (largest
    /// change first), totals, the events that changed most.
    public func table(rowsMax: Int = 50) -> String {
        func text(_ c: Credits) -> String {
            var bytes: [UInt8] = []
            c.appendDecimal(to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        func render(_ header: [String], _ lines: [[String]], left: Int = 2) -> String {
            var widths = header.map(\.count)
            for line in lines { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
            func row(_ cells: [String]) -> String {
                cells.enumerated().map { i, cell in
                    i < left ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - cell.count) + cell
                }.joined(separator: "  ")
            }
            return ([row(header)] + lines.map(row)).joined(separator: "\n") + "\n"
        }
        var s = "replay of batches \(fromBatch)…\(throughBatch): \(batchesReplayed) batch(es), \(recordsReplayed) record(s)"
        s += snapshotBatch.map { " (from the snapshot through batch \($0))" } ?? ""
        s += "\n"
        // Largest change of charges first (then balance), ties in report order.
        func magnitude(_ c: Credits) -> Credits { c.isNegative ? .zero - c : c }
        let changed = rows.enumerated().filter { !$0.element.difference.isZero }.sorted {
            let a = (magnitude($0.element.difference.charges), magnitude($0.element.difference.available))
            let b = (magnitude($1.element.difference.charges), magnitude($1.element.difference.available))
            return a != b ? a > b : $0.offset < $1.offset
        }.map(\.element)
        if hasNoDifferences {
            s += "no differences: every charge, balance and overage is as committed\n"
            return s
        }
        s += "\n\(changed.count) customer/currency pair(s) differ\(changed.count > rowsMax ? " (the first \(rowsMax) shown)" : ""):\n"
        s += render(
            ["customer", "currency", "committed", "recomputed", "difference", "overage diff", "available diff"],
            changed.prefix(rowsMax).map {
                [$0.customer, $0.currency, text($0.committed.charges), text($0.recomputed.charges), text($0.difference.charges),
                 text($0.difference.overage), text($0.difference.available)]
            })
        s += "\ntotals:\n"
        s += render(
            ["currency", "", "committed", "recomputed", "difference", "overage diff", "available diff"],
            totals.map {
                [$0.currency, "", text($0.committed.charges), text($0.recomputed.charges), text($0.difference.charges),
                 text($0.difference.overage), text($0.difference.available)]
            })
        if !eventsChangedMost.isEmpty {
            s += "\n\(eventsChanged) event charge(s) changed; the largest:\n"
            s += render(
                ["customer", "event", "currency", "committed", "recomputed", "difference", "at"],
                eventsChangedMost.map {
                    [$0.customer, $0.id, $0.currency, text($0.committed), text($0.recomputed), text($0.difference),
                     "\($0.topic)/\($0.partition)@\($0.offset)"]
                }, left: 3)
        }
        s += "\ncorrection \(correctionID): \(adjustments.count) adjust entr\(adjustments.count == 1 ? "y" : "ies")\n"
        for reason in unappliable { s += "cannot be applied: \(reason)\n" }
        return s
    }
}
