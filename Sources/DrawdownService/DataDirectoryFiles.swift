import DrawdownCore
import DrawdownLedger
import Foundation

/// Small files the pipeline keeps beside the ledger in the data directory. Each is replaced
/// whole: written to `<name>.tmp`, fsynced, renamed over the old one, then the directory is
/// fsynced, so a reader sees the old or the new content, never a mix.
///
/// - `published`: `"<batch number>\n"`, the last batch whose outputs were all confirmed
///   delivered. Batches after it have their outputs regenerated and sent again on start.
/// - `engine-settings`: the dedupe window, expiry grace and price book the ledger was
///   written with, so tools (`drawdown state`, `drawdown ledger`) replay it without flags.
enum DataDirectoryFiles {
    static let publishedName = "published"
    static let settingsName = "engine-settings"

    static func writeDurably(_ bytes: [UInt8], directory: String, name: String, io: any StorageIO) throws {
        let path = directory + "/" + name
        let temp = path + ".tmp"
        try? io.removeFile(temp)
        let fd = try io.openForWriting(temp, create: true, exclusive: true)
        do {
            var written = 0
            while written < bytes.count {
                written += try bytes.withUnsafeBytes { raw in
                    try io.pwrite(fd, UnsafeRawBufferPointer(rebasing: raw[written...]), at: Int64(written))
                }
            }
            try io.fsync(fd)
        } catch {
            io.close(fd)
            throw error
        }
        io.close(fd)
        try io.rename(temp, to: path)
        try io.syncDirectory(directory)
    }

    static func read(directory: String, name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: directory + "/" + name).map { [UInt8]($0) }
    }

    /// The last batch whose outputs were confirmed delivered (0 when none was).
    static func readPublished(directory: String) throws -> UInt64 {
        guard let bytes = read(directory: directory, name: publishedName) else { return 0 }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let n = UInt64(text) else {
            throw ReplayError.damagedFile(path: directory + "/" + publishedName, detail: "not a batch number: \(text)")
        }
        return n
    }

    static func writePublished(_ batch: UInt64, directory: String, io: any StorageIO) throws {
        try writeDurably(Array("\(batch)\n".utf8), directory: directory, name: publishedName, io: io)
    }
}

/// The engine settings a ledger was written with: dedupe window, expiry grace and the price
/// book (its exact bytes). Replaying a ledger with other settings can give other entries,
/// which recovery detects and refuses.
public struct EngineSettings: Sendable {
    public var config: EngineConfig
    /// The price book file's bytes, or nil when usage must carry `cost`.
    public var priceBookJSON: [UInt8]?
    public private(set) var priceBook: PriceBook?

    public init(config: EngineConfig = EngineConfig(), priceBookJSON: [UInt8]? = nil) throws {
        self.config = config
        self.priceBookJSON = priceBookJSON
        if let priceBookJSON {
            do {
                priceBook = try PriceBook.parse(priceBookJSON)
            } catch {
                throw ReplayError.damagedFile(path: "price book", detail: error.description)
            }
        }
    }

    /// A price book given directly (tests); `priceBookJSON` stays nil, so it is not saved.
    public init(config: EngineConfig, priceBook: PriceBook?) {
        self.config = config
        self.priceBookJSON = nil
        self.priceBook = priceBook
    }

    /// Text header then the price book bytes:
    /// `drawdown-engine-settings 1\ndedupe_window_ns N\nexpiry_grace_ns N\nprices_bytes N|none\n<bytes>`.
    func encode() -> [UInt8] {
        var text = "drawdown-engine-settings 1\n"
        text += "dedupe_window_ns \(config.dedupeWindow)\n"
        text += "expiry_grace_ns \(config.expiryGrace)\n"
        text += "prices_bytes \(priceBookJSON.map { String($0.count) } ?? "none")\n"
        return Array(text.utf8) + (priceBookJSON ?? [])
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> EngineSettings {
        func damaged(_ detail: String) -> ReplayError { .damagedFile(path: path, detail: detail) }
        var lines: [String] = []
        var index = 0
        while lines.count < 4 {
            guard let nl = bytes[index...].firstIndex(of: 0x0A) else { throw damaged("short header") }
            lines.append(String(decoding: bytes[index..<nl], as: UTF8.self))
            index = nl + 1
        }
        guard lines[0] == "drawdown-engine-settings 1" else { throw damaged("unknown format: \(lines[0])") }
        func value(_ line: String, _ name: String) throws -> String {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0] == name else { throw damaged("expected \(name): \(line)") }
            return String(parts[1])
        }
        guard let window = Int64(try value(lines[1], "dedupe_window_ns")),
            let grace = Int64(try value(lines[2], "expiry_grace_ns"))
        else { throw damaged("bad durations") }
        let pricesField = try value(lines[3], "prices_bytes")
        var prices: [UInt8]?
        if pricesField != "none" {
            guard let count = Int(pricesField), count == bytes.count - index else { throw damaged("price book length") }
            prices = Array(bytes[index...])
        }
        return try EngineSettings(config: EngineConfig(dedupeWindow: window, expiryGrace: grace), priceBookJSON: prices)
    }

    /// The settings saved in `dataDirectory`, or nil when none were saved.
    public static func load(dataDirectory: String) throws -> EngineSettings? {
        guard let bytes = DataDirectoryFiles.read(directory: dataDirectory, name: DataDirectoryFiles.settingsName) else { return nil }
        return try decode(bytes, path: dataDirectory + "/" + DataDirectoryFiles.settingsName)
    }

    func save(dataDirectory: String, io: any StorageIO) throws {
        try DataDirectoryFiles.writeDurably(encode(), directory: dataDirectory, name: DataDirectoryFiles.settingsName, io: io)
    }
}
