// The built `drawdown dev-broker` as a subprocess, for every test target.
import Foundation

/// The built `drawdown dev-broker` running as a subprocess, with its control channel.
/// `stop()` (also run by `deinit`) terminates it; `--exit-on-stdin-eof` makes it exit by
/// itself if this test process dies first.
public final class TestDevBroker: @unchecked Sendable {
    // @unchecked Sendable: `process` and the pipes are only touched under `lock` or are
    // immutable; lines are handed over through `lines` under the same lock.
    private let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    private let lock = NSCondition()
    private var lines: [String] = []
    private var stopped = false
    public private(set) var bootstrapServers = ""

    /// How long to wait for the broker's first line or a control reply.
    static let replyTimeout: TimeInterval = 60

    public init(brokers: Int = 1, topics: [String], extraArguments: [String] = []) throws {
        process.executableURL = drawdownBinaryURL()
        var args = ["dev-broker", "--brokers", String(brokers), "--exit-on-stdin-eof"]
        for t in topics { args += ["--topic", t] }
        args += extraArguments
        process.arguments = args
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = FileHandle.standardError
        try process.run()
        let reader = stdoutPipe.fileHandleForReading
        Thread.detachNewThread { [lock] in
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending = Data(pending[(nl + 1)...])
                    lock.lock()
                    self.lines.append(line)
                    lock.broadcast()
                    lock.unlock()
                }
            }
        }
        guard let first = nextLine() else {
            stop()
            throw BrokerError.noBootstrapLine
        }
        bootstrapServers = first
    }

    deinit { stop() }

    public enum BrokerError: Error { case noBootstrapLine, noReply(String) }

    private func nextLine() -> String? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(Self.replyTimeout)
        while lines.isEmpty {
            if !lock.wait(until: deadline) { return nil }
        }
        return lines.removeFirst()
    }

    /// Sends one control command and returns the broker's reply ("ok" or "error: …").
    @discardableResult
    public func control(_ command: String) throws -> String {
        stdinPipe.fileHandleForWriting.write(Data((command + "\n").utf8))
        guard let reply = nextLine() else { throw BrokerError.noReply(command) }
        return reply
    }

    /// Terminates the broker (SIGTERM, then SIGKILL after 10 s). Safe to call twice.
    public func stop() {
        lock.lock()
        let already = stopped
        stopped = true
        lock.unlock()
        guard !already, process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? stdinPipe.fileHandleForWriting.close()
    }

    public var terminationStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
}
