/// A parsed JSON document, for configuration and tools (price books, state files).
/// Not for the hot path: records are read by `MessageDecoder` without building a tree.
/// Numbers keep their exact text.
public enum JSONValue: Sendable, Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses a whole document with the same strict rules as records (valid UTF-8,
    /// no repeated names, at most 32 levels).
    public static func parse(_ bytes: [UInt8]) throws(JSONMalformed) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONMalformed) -> JSONValue in
            guard UTF8Validation.isValid(buffer) else { throw JSONMalformed(detail: "invalid UTF-8", offset: 0) }
            var scratch = JSONScratch()
            var scanner = JSONScanner(bytes: buffer, scratch: &scratch)
            _ = try scanner.scanDocument()  // validates everything
            scanner.index = 0
            scanner.skipWhitespace()
            let value = scanner.tree()
            scanner.finish(into: &scratch)
            return value
        }
    }

    public static func parse(_ text: String) throws(JSONMalformed) -> JSONValue {
        try parse(Array(text.utf8))
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

extension JSONScanner {
    /// Builds a tree from an already validated document.
    mutating func tree() -> JSONValue {
        skipWhitespace()
        switch bytes[index] {
        case UInt8(ascii: "\""):
            let span = (try? scanString())!
            return .string(decodedString(span))
        case UInt8(ascii: "{"):
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                let key = decodedString((try? scanString())!)
                skipWhitespace()
                index += 1  // :
                members[key] = tree()
                skipWhitespace()
                let separator = bytes[index]
                index += 1
                if separator == UInt8(ascii: "}") { return .object(members) }
            }
        case UInt8(ascii: "["):
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                elements.append(tree())
                skipWhitespace()
                let separator = bytes[index]
                index += 1
                if separator == UInt8(ascii: "]") { return .array(elements) }
            }
        case UInt8(ascii: "t"):
            index += 4
            return .bool(true)
        case UInt8(ascii: "f"):
            index += 5
            return .bool(false)
        case UInt8(ascii: "n"):
            index += 4
            return .null
        default:
            let span = (try? scanNumber())!
            return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[span.start..<span.end]), as: UTF8.self))
        }
    }
}
