@testable import DrawdownCore
import DrawdownTestSupport
import Testing

/// The binary format of ledger payloads and snapshots, against a byte-by-byte transcription
/// of its rules: the encoders must keep writing exactly these bytes, or existing ledgers,
/// hash chains and snapshots stop matching.
@Suite struct BinaryCodingTests {
    /// An entry type's code is its position in `allCases`, as the format has always said.
    @Test func entryTypeCodesAreTheirPositionInAllCases() {
        for (position, type) in EntryType.allCases.enumerated() {
            #expect(Int(type.code) == position, "\(type)")
            #expect(EntryType.byCode[position] == type)
        }
        #expect(EntryType.byCode.count == EntryType.allCases.count)
    }

    /// `uint64` and `credits` write little-endian bytes (the reference shifts them out one
    /// by one, as the writer did before), and the reader gives the values back.
    @Test func fixedWidthValuesAreLittleEndianAndRoundTrip() throws {
        var generator = SeededGenerator(seed: 0xB1_4A_27)
        for _ in 0..<2_000 {
            let word = generator.next()
            let high = Int64(bitPattern: generator.next()) >> Int64(generator.next() % 64)
            let amount = Credits(nanos: Int128(high) << 64 | Int128(generator.next()))
            var writer = BinaryWriter()
            writer.uint64(word)
            writer.credits(amount)
            let raw = UInt128(bitPattern: amount.nanos)
            var expected: [UInt8] = []
            for shift in stride(from: 0, to: 64, by: 8) { expected.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
            for shift in stride(from: 0, to: 128, by: 8) { expected.append(UInt8(truncatingIfNeeded: raw >> UInt128(shift))) }
            #expect(writer.bytes == expected)
            var reader = BinaryReader(writer.bytes)
            #expect(try reader.uint64() == word)
            #expect(try reader.credits() == amount)
            #expect(reader.isAtEnd)
        }
    }

    /// Entries of every type encode to the layout the format names, field by field, and
    /// decode to themselves.
    @Test func entriesEncodeFieldByFieldAndRoundTrip() throws {
        var generator = SeededGenerator(seed: 0x1ED6_E4)
        for n in 0..<1_000 {
            let type = EntryType.allCases[n % EntryType.allCases.count]
            let entry = LedgerEntry(
                seq: generator.next() >> (generator.next() % 64), type: type, customer: "cust-\(n)",
                currency: n % 3 == 0 ? "usd" : "credits", grant: type == .overage ? nil : "g-\(n % 17)",
                amount: Credits(nanos: Int128(Int64(bitPattern: generator.next()))), source: "evt-é-\(n)",
                timestamp: EventTime(nanos: Int64(bitPattern: generator.next()) >> 2, offsetMinutes: Int16(n % 120) - 60, fractionDigits: UInt8(n % 10), style: 0),
                balance: Credits(nanos: -Int128(n) * 1_000_000_007))
            var writer = BinaryWriter()
            entry.encode(into: &writer)

            var expected = BinaryWriter()
            expected.varint(entry.seq)
            expected.byte(UInt8(EntryType.allCases.firstIndex(of: entry.type)!))
            expected.string(entry.customer)
            expected.string(entry.currency)
            expected.optionalString(entry.grant)
            expected.credits(entry.amount)
            expected.string(entry.source)
            expected.eventTime(entry.timestamp)
            expected.credits(entry.balance)
            #expect(writer.bytes == expected.bytes)

            var reader = BinaryReader(writer.bytes)
            #expect(try LedgerEntry.decode(from: &reader) == entry)
            #expect(reader.isAtEnd)
        }
    }

    /// A type code past the known ones is damage, not a crash.
    @Test func unknownEntryTypeCodeIsRefused() {
        var writer = BinaryWriter()
        writer.varint(UInt64(1))
        writer.byte(UInt8(EntryType.allCases.count))
        var reader = BinaryReader(writer.bytes)
        #expect(throws: BinaryReader.Damaged.self) { try LedgerEntry.decode(from: &reader) }
    }
}
