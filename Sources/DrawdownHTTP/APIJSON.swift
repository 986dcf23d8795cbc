import DrawdownCore
import DrawdownService

/// The JSON bodies of the API, written byte by byte with DrawdownCore's writers (the same
/// decimal and timestamp forms as every other output: amounts are strings, SPEC §6).
enum APIJSON {
    /// `{"error": reason, "detail": detail}`.
    static func error(_ reason: String, _ detail: String) -> [UInt8] {
        var out: [UInt8] = []
        out.append(contentsOf: #"{"error":"#.utf8)
        JSONWriter.appendString(reason, to: &out)
        out.append(contentsOf: #","detail":"#.utf8)
        JSONWriter.appendString(detail, to: &out)
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    /// `GET /v1/customers/{id}/balances`: per currency, available, overage and every grant;
    /// `as_of` names the durable batch and the partition's ledger sequence it reflects.
    static func balances(_ customer: ProcessorStatus.DurableCustomer) -> [UInt8] {
        let view = customer.view
        var out: [UInt8] = []
        out.reserveCapacity(256 + 192 * view.currencies.reduce(0) { $0 + $1.grants.count })
        out.append(contentsOf: #"{"customer":"#.utf8)
        JSONWriter.appendString(view.customer, to: &out)
        out.append(contentsOf: #","partition":"#.utf8)
        out.append(contentsOf: String(view.partition).utf8)
        out.append(contentsOf: #","as_of":{"batch":"#.utf8)
        out.append(contentsOf: String(customer.batch).utf8)
        out.append(contentsOf: #","partition_seq":"#.utf8)
        out.append(contentsOf: String(customer.partitionSeq).utf8)
        out.append(contentsOf: #"},"currencies":{"#.utf8)
        for (i, currency) in view.currencies.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(currency.currency, to: &out)
            out.append(contentsOf: #":{"available":"#.utf8)
            JSONWriter.appendAmount(currency.available, to: &out)
            out.append(contentsOf: #","overage":"#.utf8)
            JSONWriter.appendAmount(currency.overage, to: &out)
            out.append(contentsOf: #","grants":["#.utf8)
            for (j, grant) in currency.grants.enumerated() {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                appendGrant(grant, to: &out)
            }
            out.append(contentsOf: "]}".utf8)
        }
        out.append(contentsOf: "}}\n".utf8)
        return out
    }

    private static func appendGrant(_ grant: CustomerView.Grant, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        JSONWriter.appendString(grant.id, to: &out)
        out.append(contentsOf: #","remaining":"#.utf8)
        JSONWriter.appendAmount(grant.remaining, to: &out)
        out.append(contentsOf: #","status":"#.utf8)
        JSONWriter.appendString(grant.status, to: &out)
        out.append(contentsOf: #","priority":"#.utf8)
        out.append(contentsOf: String(grant.priority).utf8)
        out.append(contentsOf: #","category":"#.utf8)
        JSONWriter.appendString(grant.category, to: &out)
        out.append(contentsOf: #","effective_at":""#.utf8)
        grant.effectiveAt.append(to: &out)
        out.append(contentsOf: #"","expires_at":"#.utf8)
        if let expires = grant.expiresAt {
            out.append(UInt8(ascii: "\""))
            expires.append(to: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: #","meters":"#.utf8)
        if let meters = grant.meters {
            out.append(UInt8(ascii: "["))
            for (k, meter) in meters.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(meter, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `GET /v1/customers/{id}/ledger`: entries in the SPEC §7 shape plus `partition` and
    /// `batch`, the cursor of the last one, and whether more follow it now.
    static func ledgerPage(customer: String, page: CustomerLedgerIndex.Page) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + 200 * page.entries.count)
        out.append(contentsOf: #"{"customer":"#.utf8)
        JSONWriter.appendString(customer, to: &out)
        out.append(contentsOf: #","as_of_batch":"#.utf8)
        out.append(contentsOf: String(page.throughBatch).utf8)
        out.append(contentsOf: #","entries":["#.utf8)
        for (i, item) in page.entries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            item.entry.appendJSON(to: &out, partition: item.partition)
            // Splice `"batch":N` in before the closing brace.
            out.removeLast()
            out.append(contentsOf: #","batch":"#.utf8)
            out.append(contentsOf: String(item.batch).utf8)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: #"],"next_cursor":"#.utf8)
        if let cursor = page.nextCursor {
            JSONWriter.appendString(cursor.description, to: &out)
        } else {
            out.append(contentsOf: "null".utf8)
        }
        out.append(contentsOf: #","has_more":"#.utf8)
        out.append(contentsOf: (page.hasMore ? "true" : "false").utf8)
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}
