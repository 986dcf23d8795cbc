/// One input record as the ledger keeps it: where it came from and its exact bytes.
/// Recovery re-applies these, in order, to the engine state of the last snapshot; the
/// engine is deterministic, so that rebuilds the exact state (dedupe keys included).
public struct InputRecord: Sendable, Equatable {
    public var topic: String
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]

    public init(topic: String, offset: Int64, key: [UInt8]?, value: [UInt8]) {
        self.topic = topic
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// What one ledger batch says about one input partition: the records applied, in the
/// order they were applied (the interleaving of topics included), and the entries written.
public struct PartitionSection: Sendable, Equatable {
    public var partition: Int32
    public var inputs: [InputRecord]
    public var entries: [LedgerEntry]

    public init(partition: Int32, inputs: [InputRecord] = [], entries: [LedgerEntry] = []) {
        self.partition = partition
        self.inputs = inputs
        self.entries = entries
    }
}

/// The engine's part of a ledger batch (the opaque payload of `LedgerBatch`).
public struct BatchPayload: Sendable, Equatable {
    public static let formatVersion: UInt8 = 1
    public var sections: [PartitionSection]

    public init(sections: [PartitionSection]) { self.sections = sections }

    public func encode() -> [UInt8] {
        var writer = BinaryWriter(capacity: 4096)
        writer.byte(BatchPayload.formatVersion)
        writer.varint(sections.count)
        for section in sections {
            writer.signed(Int64(section.partition))
            writer.varint(section.inputs.count)
            for input in section.inputs {
                writer.string(input.topic)
                writer.signed(input.offset)
                if let key = input.key {
                    writer.byte(1)
                    writer.data(key)
                } else {
                    writer.byte(0)
                }
                writer.data(input.value)
            }
            writer.varint(section.entries.count)
            for entry in section.entries { entry.encode(into: &writer) }
        }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(BinaryReader.Damaged) -> BatchPayload {
        var reader = BinaryReader(bytes)
        let version = try reader.byte()
        guard version == formatVersion else { throw BinaryReader.Damaged(description: "payload format \(version) unknown") }
        var sections: [PartitionSection] = []
        for _ in 0..<(try reader.count(max: 1 << 20)) {
            let partitionValue = try reader.signed()
            guard let partition = Int32(exactly: partitionValue) else { throw BinaryReader.Damaged(description: "bad partition") }
            var section = PartitionSection(partition: partition)
            for _ in 0..<(try reader.count()) {
                let topic = try reader.string()
                let offset = try reader.signed()
                let key = try reader.byte() == 0 ? nil : Array(try reader.data())
                section.inputs.append(InputRecord(topic: topic, offset: offset, key: key, value: Array(try reader.data())))
            }
            for _ in 0..<(try reader.count()) { section.entries.append(try LedgerEntry.decode(from: &reader)) }
            sections.append(section)
        }
        guard reader.isAtEnd else { throw BinaryReader.Damaged(description: "bytes after the payload") }
        return BatchPayload(sections: sections)
    }
}
