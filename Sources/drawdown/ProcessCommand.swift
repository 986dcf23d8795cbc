import ArgumentParser
import DrawdownCore
import Foundation

/// `drawdown process`: applies a JSON-lines file as one partition, offline.
struct ProcessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "process",
        abstract: "Apply a JSON-lines file of messages as one partition and print the ledger.",
        discussion: """
            Writes ledger entries (SPEC §7 shape) as JSON lines on stdout. Rejected records \
            (and conflicting resends) go to --rejects-out as {"line": N, "reason": "...", \
            "detail": "...", "raw": "..."}; alerts to --alerts-out; the final state to \
            --state-out. Exit status 0 when the input was read to the end, whatever was \
            rejected; 1 when the tool cannot work (unreadable input, bad price book).
            """)

    @Argument(help: "Input file of JSON lines, or - for stdin.")
    var input: String = "-"

    @Option(help: "Price book (JSON). Without it, usage must carry `cost`.")
    var prices: String?

    @Option(name: .customLong("state-out"), help: "Write the final state JSON here.")
    var stateOut: String?

    @Option(name: .customLong("rejects-out"), help: "Write rejected records here, one JSON object per line.")
    var rejectsOut: String?

    @Option(name: .customLong("alerts-out"), help: "Write alerts here, one JSON object per line.")
    var alertsOut: String?

    @Option(name: .customLong("dedupe-window"), help: "How long ids are remembered, in event time (e.g. 24h, 90m).")
    var dedupeWindow: String = "24h"

    @Option(name: .customLong("expiry-grace"), help: "Grace after expires_at for the idle-customer sweep.")
    var expiryGrace: String = "1h"

    func run() throws {
        guard let window = DurationParser.nanoseconds(dedupeWindow) else {
            throw ValidationError("--dedupe-window: not a duration: \(dedupeWindow) (e.g. 24h, 90m, 500ms)")
        }
        guard let grace = DurationParser.nanoseconds(expiryGrace) else {
            throw ValidationError("--expiry-grace: not a duration: \(expiryGrace) (e.g. 1h, 30m)")
        }
        var priceBook: PriceBook?
        if let prices {
            let bytes = try readAll(prices, what: "price book")
            do {
                priceBook = try PriceBook.parse(bytes)
            } catch {
                throw CLIError("\(prices): \(error.description)")
            }
        }
        let data = try readAll(input, what: "input")
        let stdout = OutputFile.standardOutput()
        let rejects = try rejectsOut.map { try OutputFile(path: $0) }
        let alertsFile = try alertsOut.map { try OutputFile(path: $0) }

        var processor = OfflineProcessor(priceBook: priceBook, config: EngineConfig(dedupeWindow: window, expiryGrace: grace))
        var line: [UInt8] = []
        data.withUnsafeBufferPointer { buffer in
            processor.run(buffer) { entries, alerts in
                for entry in entries {
                    line.removeAll(keepingCapacity: true)
                    entry.appendJSON(to: &line)
                    line.append(0x0A)
                    stdout.write(line)
                }
                if let alertsFile {
                    for alert in alerts {
                        line.removeAll(keepingCapacity: true)
                        alert.appendJSON(to: &line)
                        line.append(0x0A)
                        alertsFile.write(line)
                    }
                }
            } rejected: { reject in
                guard let rejects else { return }
                line.removeAll(keepingCapacity: true)
                line.append(contentsOf: #"{"line":"#.utf8)
                line.append(contentsOf: String(reject.line).utf8)
                line.append(contentsOf: #","reason":""#.utf8)
                line.append(contentsOf: reject.rejection.reason.rawValue.utf8)
                line.append(contentsOf: #"","detail":"#.utf8)
                JSONWriter.appendString(reject.rejection.detail, to: &line)
                line.append(contentsOf: #","raw":"#.utf8)
                JSONWriter.appendString(String(decoding: reject.raw, as: UTF8.self), to: &line)
                line.append(contentsOf: "}\n".utf8)
                rejects.write(line)
            }
        }
        stdout.flush()
        try rejects?.close()
        try alertsFile?.close()
        if let stateOut {
            let file = try OutputFile(path: stateOut)
            file.write(StateDocument.render([processor.engine]))
            try file.close()
        }
    }
}

/// An error that stops the tool, with a message for the operator.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func readAll(_ path: String, what: String) throws -> [UInt8] {
    if path == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError("cannot read \(what) \(path)")
    }
    return Array(data)
}

/// A buffered output file (or stdout) written with stdio. Used from one thread at a time.
final class OutputFile {
    private let handle: UnsafeMutablePointer<FILE>
    private let owned: Bool

    static func standardOutput() -> OutputFile { OutputFile(handle: fdopen(1, "w"), owned: false) }

    private init(handle: UnsafeMutablePointer<FILE>, owned: Bool) {
        self.handle = handle
        self.owned = owned
    }

    init(path: String) throws {
        guard let file = fopen(path, "w") else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        handle = file
        owned = true
        setvbuf(file, nil, _IOFBF, 1 << 16)
    }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { _ = fwrite($0.baseAddress, 1, $0.count, handle) }
    }

    func flush() { fflush(handle) }

    func close() throws {
        guard owned else { return flush() }
        if fclose(handle) != 0 { throw CLIError("write failed: \(String(cString: strerror(errno)))") }
    }
}
