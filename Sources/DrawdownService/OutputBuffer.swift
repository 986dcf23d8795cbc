import DrawdownKafka

/// Where `RecordApplier` puts the records it produces: a plain `[OutputRecord]` (recovery,
/// replay, tests) or an `OutputBuffer` (the live shards).
protocol OutputSink {
    mutating func append(kind: OutputRecord.Kind, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: [KafkaHeader])
}

extension Array: OutputSink where Element == OutputRecord {
    mutating func append(kind: OutputRecord.Kind, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: [KafkaHeader]) {
        append(OutputRecord(kind: kind, key: key.map { [UInt8]($0) }, value: [UInt8](value), headers: headers))
    }
}

/// Output records packed into one byte buffer: appending one copies its bytes and allocates
/// nothing (once the buffer has grown), and the publisher hands the bytes to the producer in
/// place. Records keep their order. `self[i]` builds an `OutputRecord` (for tests and tools).
struct OutputBuffer: Sendable, RandomAccessCollection, OutputSink {
    struct Span: Sendable {
        var kind: OutputRecord.Kind
        var keyStart: Int
        /// -1: no key.
        var keyLength: Int
        var valueStart: Int
        var valueLength: Int
        /// Index in `headerSets`; -1: no headers (all but dead letters).
        var headers: Int
    }

    private(set) var bytes: [UInt8] = []
    private(set) var spans: [Span] = []
    private(set) var headerSets: [[KafkaHeader]] = []

    init() {}

    init(_ records: [OutputRecord]) {
        for record in records { append(record) }
    }

    var startIndex: Int { 0 }
    var endIndex: Int { spans.count }

    subscript(index: Int) -> OutputRecord {
        let s = spans[index]
        return OutputRecord(
            kind: s.kind, key: s.keyLength < 0 ? nil : Array(bytes[s.keyStart..<s.keyStart + s.keyLength]),
            value: Array(bytes[s.valueStart..<s.valueStart + s.valueLength]),
            headers: s.headers < 0 ? [] : headerSets[s.headers])
    }

    /// Room for about `records` records of `bytes` bytes in all, so appending that many does
    /// not regrow the buffers.
    mutating func reserve(records: Int, bytes byteCount: Int) {
        spans.reserveCapacity(records)
        bytes.reserveCapacity(byteCount)
    }

    mutating func append(kind: OutputRecord.Kind, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: [KafkaHeader]) {
        let keyStart = bytes.count
        if let key { bytes.append(contentsOf: key) }
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        var headerIndex = -1
        if !headers.isEmpty {
            headerIndex = headerSets.count
            headerSets.append(headers)
        }
        spans.append(
            Span(
                kind: kind, keyStart: keyStart, keyLength: key?.count ?? -1, valueStart: valueStart,
                valueLength: value.count, headers: headerIndex))
    }

    mutating func append(_ record: OutputRecord) {
        record.value.withUnsafeBytes { value in
            guard let key = record.key else { return append(kind: record.kind, key: nil, value: value, headers: record.headers) }
            key.withUnsafeBytes { append(kind: record.kind, key: $0, value: value, headers: record.headers) }
        }
    }

    /// Appends every record of `other`, in order.
    mutating func append(contentsOf other: OutputBuffer) {
        if spans.isEmpty && headerSets.isEmpty && bytes.isEmpty {
            self = other
            return
        }
        let base = bytes.count, headerBase = headerSets.count
        bytes.append(contentsOf: other.bytes)
        headerSets.append(contentsOf: other.headerSets)
        spans.reserveCapacity(spans.count + other.spans.count)
        for var s in other.spans {
            s.keyStart += base
            s.valueStart += base
            if s.headers >= 0 { s.headers += headerBase }
            spans.append(s)
        }
    }

    /// Lends the bytes of every record (see `spans`).
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    var byteCount: Int { bytes.count }
}
