import CZstd

/// A zstd failure: the library's error name, or a frame that breaks our bounds.
public struct ZstdError: Error, CustomStringConvertible {
    public let description: String
}

/// One zstd compression context and one decompression context, reused across calls.
///
/// Not thread-safe (zstd contexts are not): each owner (a store, a reader) keeps its own.
/// Frames always record their content size, so decompression allocates exactly once and refuses
/// any frame that claims more than the caller's bound.
public final class Zstd {
    private let cctx: OpaquePointer
    private let dctx: OpaquePointer
    public let level: Int32

    // `ZSTD_CONTENTSIZE_UNKNOWN` and `ZSTD_CONTENTSIZE_ERROR` are macros Swift does not import.
    private static let contentSizeUnknown = UInt64.max
    private static let contentSizeError = UInt64.max - 1

    public init(level: Int32 = LedgerLimits.default.zstdLevel) {
        guard let c = ZSTD_createCCtx(), let d = ZSTD_createDCtx() else {
            fatalError("zstd: out of memory creating contexts")
        }
        cctx = c
        dctx = d
        self.level = level
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        ZSTD_freeDCtx(dctx)
    }

    /// The most bytes compressing `count` bytes can produce.
    public static func compressBound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `input` into one zstd frame.
    public func compress(_ input: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        try input.withUnsafeBytes { raw throws in try compress(raw, appendingTo: &out) }
        return out
    }

    /// Compresses `input` into one zstd frame appended to `buffer` (so a record's header and body
    /// share one allocation).
    public func compress(_ input: UnsafeRawBufferPointer, appendingTo buffer: inout [UInt8]) throws {
        let start = buffer.count
        let bound = Self.compressBound(input.count)
        buffer.append(contentsOf: repeatElement(0, count: bound))
        let written = buffer.withUnsafeMutableBytes { out in
            ZSTD_compressCCtx(cctx, out.baseAddress! + start, bound, input.baseAddress, input.count, level)
        }
        if ZSTD_isError(written) != 0 {
            buffer.removeLast(bound)
            throw ZstdError(description: "zstd compress: \(Self.errorName(written))")
        }
        buffer.removeLast(bound - written)
    }

    /// Decompresses one frame. Throws unless the frame states its size, that size is at most
    /// `decompressedBytesMax` (and equals `expectedBytes` when given), and the frame decodes to
    /// exactly that many bytes.
    public func decompress(
        _ input: UnsafeRawBufferPointer, decompressedBytesMax: Int, expectedBytes: Int? = nil
    ) throws -> [UInt8] {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if size == Self.contentSizeError {
            throw ZstdError(description: "zstd: not a zstd frame")
        }
        if size == Self.contentSizeUnknown {
            throw ZstdError(description: "zstd: frame does not state its content size")
        }
        guard size <= UInt64(decompressedBytesMax) else {
            throw ZstdError(description: "zstd: frame holds \(size) bytes, more than the \(decompressedBytesMax) allowed")
        }
        let count = Int(size)
        if let expectedBytes, expectedBytes != count {
            throw ZstdError(description: "zstd: frame holds \(count) bytes, header says \(expectedBytes)")
        }
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let n = ZSTD_decompressDCtx(dctx, buffer.baseAddress, count, input.baseAddress, input.count)
            if ZSTD_isError(n) != 0 {
                failure = "zstd decompress: \(Self.errorName(n))"
            } else if n != count {
                failure = "zstd: frame decoded to \(n) bytes, it states \(count)"
            }
            // UInt8 is trivial, so any bytes are valid values; on failure the array is dropped.
            initialized = count
        }
        if let failure { throw ZstdError(description: failure) }
        return out
    }

    public func decompress(_ input: [UInt8], decompressedBytesMax: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { raw throws in
            try decompress(raw, decompressedBytesMax: decompressedBytesMax)
        }
    }

    private static func errorName(_ code: Int) -> String {
        guard let name = ZSTD_getErrorName(code) else { return "error \(code)" }
        return String(cString: name)
    }
}
