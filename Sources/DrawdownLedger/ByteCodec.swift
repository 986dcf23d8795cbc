/// Little-endian writing into a growing byte buffer.
struct ByteWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func write(_ value: UInt8) { bytes.append(value) }

    mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func write(bytes other: some Collection<UInt8>) { bytes.append(contentsOf: other) }
}

/// Why a byte sequence could not be read: it ended early or held a value out of range.
struct ByteReaderError: Error, CustomStringConvertible {
    let description: String
}

/// Little-endian reading from a byte buffer, bounds-checked: running past the end throws.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw ByteReaderError(description: "ends at byte \(bytes.count), wanted \(size) more at \(offset)")
        }
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func readBytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else {
            throw ByteReaderError(description: "ends at byte \(bytes.count), wanted \(count) more at \(offset)")
        }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
}
