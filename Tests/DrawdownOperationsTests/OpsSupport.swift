import DrawdownTestSupport
import Foundation

/// A tiny blocking HTTP/1.1 client (one request per connection, `Connection: close`): enough
/// for the API tests, with nothing between the test and the bytes on the wire.
enum MiniHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                throw OpsFailure("not a JSON object: \(text)")
            }
            return object
        }
    }

    static func request(
        port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil
    ) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw OpsFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw OpsFailure("connect to port \(port): errno \(errno)") }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\nContent-Type: application/json\r\n" }
        head += "\r\n"
        var bytes = Data(head.utf8)
        if let body { bytes.append(body) }
        try bytes.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, 0)
                guard n > 0 else { throw OpsFailure("send: errno \(errno)") }
                sent += n
            }
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received.append(contentsOf: buffer[0..<n])
        }
        guard let split = received.range(of: Data("\r\n\r\n".utf8)) else { throw OpsFailure("no HTTP response: \(received.count) bytes") }
        let headText = String(decoding: received[..<split.lowerBound], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw OpsFailure("bad status line: \(headText)") }
        var fields: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(received[split.upperBound...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: fields, body: body)
    }

    private static func dechunk(_ data: Data) -> Data {
        var out = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
            let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16) ?? 0
            if size == 0 { break }
            let start = lineEnd.upperBound
            out.append(rest[start..<start + size])
            rest = rest[(start + size + 2)...]
        }
        return out
    }
}

struct OpsFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One sample of Prometheus text exposition: name, labels, value.
struct PrometheusSample: Equatable {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Parses Prometheus text format 0.0.4 strictly: `# HELP`/`# TYPE` lines, samples
/// `name{label="value",…} value`, nothing else. Throws on any line that is not one of those.
enum PrometheusText {
    static func parse(_ text: String) throws -> [PrometheusSample] {
        var samples: [PrometheusSample] = []
        var types: [String: String] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw OpsFailure("line \(i + 1): bad TYPE: \(line)")
                }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("# HELP ") || line.hasPrefix("#") { continue }
            var rest = Substring(line)
            let name = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
            guard let first = name.first, first.isLetter || first == "_" || first == ":" else {
                throw OpsFailure("line \(i + 1): bad metric name: \(line)")
            }
            rest = rest.dropFirst(name.count)
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    let key = rest.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                    guard !key.isEmpty else { throw OpsFailure("line \(i + 1): bad label: \(line)") }
                    rest = rest.dropFirst(key.count)
                    guard rest.hasPrefix("=\"") else { throw OpsFailure("line \(i + 1): bad label: \(line)") }
                    rest = rest.dropFirst(2)
                    var value = ""
                    while let c = rest.first, c != "\"" {
                        if c == "\\" {
                            rest = rest.dropFirst()
                            guard let escaped = rest.first else { throw OpsFailure("line \(i + 1): bad escape") }
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(c)
                        }
                        rest = rest.dropFirst()
                    }
                    guard rest.first == "\"" else { throw OpsFailure("line \(i + 1): unterminated label value") }
                    rest = rest.dropFirst()
                    labels[String(key)] = value
                    if rest.first == "," { rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw OpsFailure("line \(i + 1): no value: \(line)") }
            let fields = rest.dropFirst().split(separator: " ")
            guard fields.count == 1 || fields.count == 2, let value = Double(fields[0]) ?? (fields[0] == "+Inf" ? Double.infinity : nil) else {
                throw OpsFailure("line \(i + 1): bad value: \(line)")
            }
            samples.append(PrometheusSample(name: String(name), labels: labels, value: value))
        }
        return samples
    }

    /// The sum of every sample named `name` whose labels include `labels`.
    static func value(_ samples: [PrometheusSample], _ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }
}

/// `drawdown run --http 127.0.0.1:0 …` as a subprocess: its port (from the "listening" log
/// line), signals, and its exit.
final class RunningProcessor {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    init(_ arguments: [String], logPath: String, environment: [String: String] = [:]) throws {
        self.logPath = logPath
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        let logStart = try log.offset()
        process.executableURL = drawdownBinaryURL()
        process.arguments = ["run"] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try log.close()
        // The port: from "http: listening on 127.0.0.1:PORT".
        let deadline = Date().addingTimeInterval(120)
        while port == 0 {
            let text = String(decoding: (FileManager.default.contents(atPath: logPath) ?? Data()).dropFirst(Int(logStart)), as: UTF8.self)
            if let range = text.range(of: "http: listening on ") {
                let rest = text[range.upperBound...].prefix { !$0.isNewline && $0 != " " && $0 != "\"" }
                if let colon = rest.lastIndex(of: ":"), let p = Int(rest[rest.index(after: colon)...]) { port = p }
            }
            if port == 0 {
                guard process.isRunning else { throw OpsFailure("drawdown run exited \(process.terminationStatus): \(text.suffix(2_000))") }
                guard Date() < deadline else {
                    kill9()
                    throw OpsFailure("no listening line: \(text.suffix(2_000))")
                }
                usleep(20_000)
            }
        }
    }

    deinit { kill9() }

    func get(_ path: String, token: String? = nil) throws -> MiniHTTP.Response {
        try MiniHTTP.request(port: port, "GET", path, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }

    func post(_ path: String, _ body: String, token: String? = nil) throws -> MiniHTTP.Response {
        try MiniHTTP.request(port: port, "POST", path, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:], body: Data(body.utf8))
    }

    func metrics() throws -> [PrometheusSample] {
        let response = try get("/metrics")
        guard response.status == 200 else { throw OpsFailure("/metrics: \(response.status)") }
        return try PrometheusText.parse(response.text)
    }

    /// Polls `condition` every 50 ms until it holds; throws after `seconds` (a deadline for a
    /// broken build, not a performance bound).
    func waitFor(_ what: String, seconds: TimeInterval = 180, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard process.isRunning else { throw OpsFailure("drawdown run exited while waiting for \(what): \(log.suffix(3_000))") }
            guard Date() < deadline else { throw OpsFailure("timed out waiting for \(what): \(log.suffix(3_000))") }
            usleep(50_000)
        }
    }

    func waitUntilReady() throws {
        try waitFor("/readyz 200") { try get("/readyz").status == 200 }
    }

    /// Sends `signal` and waits for the exit status.
    func stop(signal: Int32 = SIGTERM, seconds: TimeInterval = 120) throws -> Int32 {
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else {
            kill9()
            throw OpsFailure("still running \(Int(seconds)) s after signal \(signal): \(log.suffix(3_000))")
        }
        return process.terminationStatus
    }

    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if process.processIdentifier != 0 { process.waitUntilExit() }
    }

    var log: String { String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self) }
}

/// Runs `drawdown ARGS` to completion, throwing unless it exits 0.
func drawdown(_ arguments: [String]) throws -> ProcessResult {
    let result = try runProcess(drawdownBinaryURL(), arguments)
    guard result.status == 0 else { throw OpsFailure("drawdown \(arguments.joined(separator: " ")): \(result.status): \(result.stderrText)") }
    return result
}
