/// Strict UTF-8 validation (RFC 3629): no overlong forms, no surrogates, nothing above
/// U+10FFFF. ASCII runs are checked sixteen bytes at a time.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var i = 0
        while i < count {
            // Fast paths: sixteen, then eight ASCII bytes.
            if i + 16 <= count {
                let words = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                    | UnsafeRawPointer(base + i + 8).loadUnaligned(as: UInt64.self)
                if words & 0x8080_8080_8080_8080 == 0 {
                    i += 16
                    continue
                }
            }
            if i + 8 <= count {
                let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                if word & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                    continue
                }
            }
            let b0 = base[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            @inline(__always) func continuation(_ at: Int) -> Bool { at < count && base[at] & 0xC0 == 0x80 }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(i + 1) else { return false }
                i += 2
            case 0xE0...0xEF:
                guard continuation(i + 1), continuation(i + 2) else { return false }
                let b1 = base[i + 1]
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 > 0x9F { return false }  // surrogates
                i += 3
            case 0xF0...0xF4:
                guard continuation(i + 1), continuation(i + 2), continuation(i + 3) else { return false }
                let b1 = base[i + 1]
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 > 0x8F { return false }  // above U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
