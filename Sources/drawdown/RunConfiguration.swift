import DrawdownCore
import DrawdownHTTP
import DrawdownKafka
import DrawdownService
import Foundation
import Logging

/// Invalid configuration of `drawdown run`: exit status 2, naming the option and where its
/// value came from.
struct ConfigurationError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One option of `drawdown run`, as a flag (`--name`), an environment variable
/// (`DRAWDOWN_NAME`) and a config-file key (`name = value`).
struct RunOption: Sendable {
    enum Kind: Sendable { case single, repeatable, flag }
    var name: String
    var kind: Kind
    var environmentName: String { "DRAWDOWN_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }

    static let all: [RunOption] = [
        .init(name: "brokers", kind: .single), .init(name: "topic", kind: .repeatable),
        .init(name: "data-dir", kind: .single), .init(name: "prices", kind: .single),
        .init(name: "group", kind: .single), .init(name: "shards", kind: .single),
        .init(name: "batch-max", kind: .single), .init(name: "batch-interval", kind: .single),
        .init(name: "dedupe-window", kind: .single), .init(name: "expiry-grace", kind: .single),
        .init(name: "snapshot-every", kind: .single), .init(name: "balance-topic", kind: .single),
        .init(name: "alert-topic", kind: .single), .init(name: "dead-letter-topic", kind: .single),
        .init(name: "command-topic", kind: .single), .init(name: "stop-at-end", kind: .flag),
        .init(name: "http", kind: .single), .init(name: "kafka-option", kind: .repeatable),
        .init(name: "log-level", kind: .single), .init(name: "log-format", kind: .single),
        .init(name: "shutdown-timeout", kind: .single),
    ]

    static func named(_ name: String) -> RunOption? { all.first { $0.name == name } }
}

/// Values of the options after precedence: flag > environment > config file > default.
struct LayeredOptions {
    /// Option name → (values, where they came from).
    private(set) var values: [String: (values: [String], source: String)] = [:]

    /// `flags`: values given on the command line (absent options left out).
    init(flags: [String: [String]], environment: [String: String], configFile: (path: String, text: String)?) throws {
        var fileValues: [String: [String]] = [:]
        if let configFile { fileValues = try Self.parseConfigFile(configFile.text, path: configFile.path) }
        for option in RunOption.all {
            if let given = flags[option.name], !given.isEmpty {
                values[option.name] = (given, "--\(option.name)")
            } else if let text = environment[option.environmentName] {
                values[option.name] = (Self.splitEnvironment(text, option: option), option.environmentName)
            } else if let fromFile = fileValues[option.name] {
                values[option.name] = (fromFile, "\(configFile!.path): \(option.name)")
            }
        }
    }

    /// Repeatable options in one environment variable: `topic` comma-separated;
    /// `kafka-option` separated by newlines or `;` (values may hold commas).
    static func splitEnvironment(_ text: String, option: RunOption) -> [String] {
        guard option.kind == .repeatable else { return [text] }
        let separators: Set<Character> = option.name == "kafka-option" ? [";", "\n"] : [","]
        return text.split(whereSeparator: { separators.contains($0) })
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `key = value` lines; `#` starts a comment line; blank lines are skipped; a value may be
    /// wrapped in double quotes; repeatable options repeat their key.
    static func parseConfigFile(_ text: String, path: String) throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigurationError("--config \(path), line \(i + 1): expected `name = value`, got `\(line)`")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard let option = RunOption.named(key) else {
                throw ConfigurationError("--config \(path), line \(i + 1): unknown option `\(key)`")
            }
            if option.kind != .repeatable, result[key] != nil {
                throw ConfigurationError("--config \(path), line \(i + 1): `\(key)` given twice")
            }
            result[key, default: []].append(value)
        }
        return result
    }

    /// `name = value  # source` per option given anywhere, `# name: default` for the others.
    func effective() -> String {
        var out = ""
        for option in RunOption.all {
            if let v = values[option.name] {
                for value in v.values { out += "\(option.name) = \(value)  # \(v.source)\n" }
            } else {
                out += "# \(option.name): default\n"
            }
        }
        return out
    }

    func string(_ name: String) -> (value: String, source: String)? {
        values[name].flatMap { v in v.values.last.map { ($0, v.source) } }
    }

    func list(_ name: String) -> (values: [String], source: String)? { values[name] }

    func required(_ name: String) throws -> String {
        guard let v = string(name), !v.value.isEmpty else {
            throw ConfigurationError("--\(name) is required (or \(RunOption.named(name)!.environmentName), or `\(name) =` in --config)")
        }
        return v.value
    }

    func integer(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = string(name) else { return fallback }
        guard let n = Int(v.value), range.contains(n) else {
            throw ConfigurationError("\(v.source): `\(v.value)` is not an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    func duration(_ name: String, default fallback: String, minimumNanos: Int64 = 0) throws -> Int64 {
        let v = string(name) ?? (fallback, "--\(name)")
        guard let nanos = DurationParser.nanoseconds(v.value), nanos >= minimumNanos else {
            throw ConfigurationError("\(v.source): `\(v.value)` is not a duration\(minimumNanos > 0 ? " of at least \(minimumNanos / 1_000_000)ms" : "") (e.g. 24h, 90m, 50ms)")
        }
        return nanos
    }

    func flag(_ name: String) throws -> Bool {
        guard let v = string(name) else { return false }
        switch v.value.lowercased() {
        case "", "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError("\(v.source): `\(v.value)` is not true or false")
        }
    }
}

/// Librdkafka properties Drawdown sets itself: overriding them would break exactly-once
/// (offsets in the ledger, idempotent murmur2 production) or group membership.
let managedKafkaProperties: Set<String> = [
    "bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset",
    "isolation.level", "enable.partition.eof", "enable.idempotence", "acks", "partitioner",
    "max.in.flight.requests.per.connection", "partition.assignment.strategy",
]

/// `--http HOST:PORT` (`:PORT` listens on every address; port 0 picks a free one).
func parseListenAddress(_ text: String, source: String) throws -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
        throw ConfigurationError("\(source): `\(text)` is not HOST:PORT (e.g. 0.0.0.0:8080, :8080, 127.0.0.1:0)")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "0.0.0.0" : host, port)
}

/// The data directory must exist and be writable, or be creatable.
func checkDataDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw ConfigurationError("--data-dir \(path): not a directory") }
        guard access(path, W_OK | X_OK | R_OK) == 0 else {
            throw ConfigurationError("--data-dir \(path): no permission to read and write it (\(String(cString: strerror(errno))))")
        }
        let ledger = path + "/ledger"
        if FileManager.default.fileExists(atPath: ledger), access(ledger, W_OK | X_OK | R_OK) != 0 {
            throw ConfigurationError("--data-dir \(path): no permission to read and write \(ledger) (\(String(cString: strerror(errno))))")
        }
    } else {
        let parent = (path as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: dir) else {
            throw ConfigurationError("--data-dir \(path): does not exist, and neither does \(dir)")
        }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw ConfigurationError("--data-dir \(path): does not exist and cannot be created in \(dir) (\(String(cString: strerror(errno))))")
        }
    }
}
