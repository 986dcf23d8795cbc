import DrawdownTestSupport
import Testing
@testable import DrawdownLedger

@Suite struct CRC32CTests {
    /// Bit-at-a-time reference, to check the slicing-by-8 tables against.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // RFC 3720 (iSCSI) appendix B.4.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func matchesReferenceAtEveryLengthAndSplit() {
        var rng = SeededGenerator(seed: 7)
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in 0...data.count {
            let bytes = Array(data[0..<length])
            let whole = CRC32C.checksum(bytes)
            #expect(whole == Self.reference(bytes), "length \(length)")
            let split = length / 3
            let incremental = bytes.withUnsafeBytes { raw in
                CRC32C.update(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<split])),
                              UnsafeRawBufferPointer(rebasing: raw[split...]))
            }
            #expect(incremental == whole, "length \(length) split at \(split)")
        }
    }
}

@Suite struct ZstdTests {
    @Test func roundTripAndReuse() throws {
        let z = Zstd(level: 3)
        var rng = SeededGenerator(seed: 11)
        for size in [0, 1, 100, 65_536, 300_000] {
            let input = (0..<size).map { i in i % 7 == 0 ? UInt8.random(in: 0...255, using: &rng) : UInt8(i % 13) }
            let packed = try z.compress(input)
            #expect(try z.decompress(packed, decompressedBytesMax: size) == input)
        }
    }

    @Test func refusesFramesOverTheBound() throws {
        let z = Zstd()
        let packed = try z.compress([UInt8](repeating: 1, count: 1_000))
        #expect(throws: ZstdError.self) { try z.decompress(packed, decompressedBytesMax: 999) }
        let wrongSize = packed.withUnsafeBytes { raw in
            Result { try z.decompress(raw, decompressedBytesMax: 2_000, expectedBytes: 1_001) }
        }
        #expect(throws: ZstdError.self) { try wrongSize.get() }
    }

    @Test func refusesGarbage() {
        let z = Zstd()
        #expect(throws: ZstdError.self) { try z.decompress([1, 2, 3, 4, 5, 6, 7, 8, 9], decompressedBytesMax: 100) }
        #expect(throws: ZstdError.self) { try z.decompress([], decompressedBytesMax: 100) }
    }

    @Test func refusesATruncatedFrame() throws {
        let z = Zstd()
        let packed = try z.compress((0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 31) })
        #expect(throws: ZstdError.self) { try z.decompress(Array(packed.dropLast(3)), decompressedBytesMax: 10_000) }
    }
}
