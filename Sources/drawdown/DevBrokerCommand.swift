import ArgumentParser
import DrawdownKafka
import Foundation

/// `drawdown dev-broker`: librdkafka's mock cluster as a long-lived process, so a processor
/// can be killed and restarted against the same broker.
struct DevBrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-broker",
        abstract: "A Kafka-protocol broker for development and tests.",
        discussion: """
            Prints the bootstrap servers (comma-separated host:port) as the first line of \
            standard output, creates the topics, and runs until SIGTERM or SIGINT, then exits 0.

            LIMITS (librdkafka's mock cluster): in-memory only, nothing survives the process; \
            each partition keeps about 5 MiB or 100,000 message batches and older data is \
            dropped silently (the low watermark moves up); no transaction markers, so aborted \
            data is visible; offsets sent to transactions are not stored; no offset lookup by \
            timestamp. Spread large data over many partitions.

            CONTROL: each line read on standard input is a command, answered by one line on \
            standard output, "ok" or "error: <reason>":
              error <Api> <count> <ERROR>      next <count> <Api> requests fail with <ERROR>
              errors <Api> <ERROR> [<ERROR>…]  next requests fail with these, in order
              clear <Api>                      forget injected errors not used yet
              down <broker> | up <broker>      stop / restart a broker (ids 1…N)
              leader <topic> <partition> <broker>
              rtt <broker> <ms>                add latency to a broker's responses
              topic <name> <partitions>        create a topic
              topic-error <name> <ERROR>       fail every request for the topic (NO_ERROR ends it)
              ping
            <Api>: Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, \
            FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, ApiVersions, \
            InitProducerId, or a number. <ERROR>: a librdkafka error name such as \
            NOT_LEADER_FOR_PARTITION or _TRANSPORT, or a number. \
            End of input is ignored unless --exit-on-stdin-eof is given.
            """)

    @Option(name: .long, help: "Number of brokers (1…64).")
    var brokers: Int = 1

    @Option(name: .long, help: "A topic to create, NAME or NAME:PARTITIONS (default 1 partition). Repeatable.")
    var topic: [String] = []

    @Option(name: .long, help: "Also write the bootstrap servers to this file (atomically: temp file + rename).")
    var bootstrapFile: String?

    @Flag(name: .long, help: "Exit 0 when standard input closes (tests use it so the broker dies with them).")
    var exitOnStdinEof = false

    func validate() throws {
        guard (1...64).contains(brokers) else { throw ValidationError("--brokers must be in 1…64") }
        for spec in topic { _ = try Self.parseTopic(spec) }
    }

    static func parseTopic(_ spec: String) throws -> (name: String, partitions: Int32) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.first, !name.isEmpty else {
            throw ValidationError("--topic \(spec): expected NAME or NAME:PARTITIONS")
        }
        guard parts.count == 2 else { return (String(name), 1) }
        guard let n = Int32(parts[1]), (1...10_000).contains(n) else {
            throw ValidationError("--topic \(spec): PARTITIONS must be in 1…10000")
        }
        return (String(name), n)
    }

    func run() throws {
        // Signals are handled by a dispatch source, not the default action.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let cluster = try KafkaMockCluster(brokers: brokers)
        for spec in topic {
            let (name, partitions) = try Self.parseTopic(spec)
            try cluster.createTopic(name, partitions: partitions)
        }
        if let bootstrapFile { try Self.writeAtomically(cluster.bootstrapServers + "\n", to: bootstrapFile) }
        let output = LineWriter()
        output.write(cluster.bootstrapServers)

        let stop = DispatchSemaphore(value: 0)
        let sources = [SIGTERM, SIGINT].map { sig in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        let exitOnEof = exitOnStdinEof
        Thread.detachNewThread {
            while let line = readLine() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                do {
                    try DevBrokerControlCommand(parsing: trimmed).apply(to: cluster)
                    output.write("ok")
                } catch let error as KafkaError {
                    output.write("error: \(error.message)")
                } catch {
                    output.write("error: \(error)")
                }
            }
            if exitOnEof { stop.signal() }
        }
        stop.wait()
        sources.forEach { $0.cancel() }
        if let bootstrapFile { try? FileManager.default.removeItem(atPath: bootstrapFile) }
        // The cluster is destroyed on exit; `Foundation.exit` skips nothing we need.
        Foundation.exit(0)
    }

    /// Writes `text` to a temporary file in the same folder, then renames it into place.
    static func writeAtomically(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        try Data(text.utf8).write(to: temp)
        guard rename(temp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw ValidationError("cannot write \(path): \(reason)")
        }
    }
}

/// Writes whole lines to standard output with one `write(2)` each (no buffering), from any thread.
private final class LineWriter: Sendable {
    private let lock = NSLock()
    func write(_ line: String) {
        lock.withLock { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }
}
