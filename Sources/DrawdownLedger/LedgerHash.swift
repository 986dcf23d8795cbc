import Crypto

/// A SHA-256 digest linking a batch to the ones before it:
/// `hash(n) = SHA-256(hash(n - 1) ‖ uncompressed body of n)`, with `hash(0) = .zero`.
public struct LedgerHash: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    /// The previous hash of batch 1.
    public static let zero = LedgerHash(words: (0, 0, 0, 0))

    // Four big-endian words, so the value needs no allocation.
    private let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    private init(words: (UInt64, UInt64, UInt64, UInt64)) {
        (w0, w1, w2, w3) = words
    }

    /// `bytes` must hold exactly 32 bytes.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == Self.byteCount, "a ledger hash is 32 bytes, got \(bytes.count)")
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, byte) in bytes.enumerated() {
            words[i / 8] = words[i / 8] << 8 | UInt64(byte)
        }
        self.init(words: (words[0], words[1], words[2], words[3]))
    }

    /// The hash of the batch whose uncompressed body is `body`, following `previous`.
    public static func chaining(_ previous: LedgerHash, body: UnsafeRawBufferPointer) -> LedgerHash {
        var sha = SHA256()
        previous.bytes.withUnsafeBytes { sha.update(bufferPointer: $0) }
        sha.update(bufferPointer: body)
        return LedgerHash(bytes: Array(sha.finalize()))
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount)
        for word in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return out
    }

    /// Lower-case hex, 64 characters.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }
}
