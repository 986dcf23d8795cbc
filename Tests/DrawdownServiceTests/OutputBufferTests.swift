import DrawdownKafka
@testable import DrawdownService
import Testing

/// `OutputBuffer` (the live shards' packed outputs) gives back exactly the records put in, in
/// order, also after merging buffers; `[OutputRecord]` as a sink builds the same records.
struct OutputBufferTests {
    static let records: [OutputRecord] = [
        OutputRecord(kind: .balanceChange, key: Array("c-1".utf8), value: Array(#"{"customer":"c-1"}"#.utf8)),
        OutputRecord(kind: .alert, key: [], value: Array(#"{"alert":1}"#.utf8)),
        OutputRecord(
            kind: .deadLetter, key: nil, value: [0xFF, 0x00],
            headers: [KafkaHeader(name: "drawdown.reason", value: Array("malformed".utf8)), KafkaHeader(name: "x", value: nil)]),
        OutputRecord(kind: .deadLetter, key: Array("k".utf8), value: [], headers: [KafkaHeader(name: "drawdown.reason", value: [])]),
    ]

    static func same(_ a: OutputRecord, _ b: OutputRecord) -> Bool {
        a.kind == b.kind && a.key == b.key && a.value == b.value && a.headers == b.headers
    }

    @Test func roundTrip() {
        let buffer = OutputBuffer(Self.records)
        #expect(buffer.count == Self.records.count)
        for (got, want) in zip(buffer, Self.records) { #expect(Self.same(got, want)) }
    }

    @Test func merging() {
        var merged = OutputBuffer()
        merged.append(contentsOf: OutputBuffer(Array(Self.records.prefix(2))))
        merged.append(contentsOf: OutputBuffer(Array(Self.records.suffix(2))))
        merged.append(contentsOf: OutputBuffer(Self.records))
        let want = Self.records + Self.records
        #expect(merged.count == want.count)
        for (got, w) in zip(merged, want) { #expect(Self.same(got, w)) }
        #expect(merged.spans.filter { $0.kind == .deadLetter }.count == 4)
    }

    @Test func arraySinkBuildsTheSameRecords() {
        var array: [OutputRecord] = []
        var buffer = OutputBuffer()
        for record in Self.records {
            record.value.withUnsafeBytes { value in
                if let key = record.key {
                    key.withUnsafeBytes { key in
                        array.append(kind: record.kind, key: key, value: value, headers: record.headers)
                        buffer.append(kind: record.kind, key: key, value: value, headers: record.headers)
                    }
                } else {
                    array.append(kind: record.kind, key: nil, value: value, headers: record.headers)
                    buffer.append(kind: record.kind, key: nil, value: value, headers: record.headers)
                }
            }
        }
        for (a, b) in zip(array, buffer) { #expect(Self.same(a, b)) }
        for (a, want) in zip(array, Self.records) { #expect(Self.same(a, want)) }
    }
}
