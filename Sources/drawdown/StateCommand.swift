import ArgumentParser
import DrawdownCore
import DrawdownLedger
import DrawdownService
import Foundation

/// `drawdown state --data-dir DIR`: the state document of SPEC §7, rebuilt from the ledger.
struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Print the final balances (SPEC §7 state JSON) rebuilt from a data directory's ledger.",
        discussion: """
            Re-applies every ledger batch's input records, in ledger order, to one engine per \
            partition, with the engine settings `drawdown run` saved in the data directory \
            (price book, dedupe window, expiry grace), and checks that each batch gives back \
            exactly the entries the ledger holds; then prints the state document. Read-only \
            and lock-free like `drawdown ledger`: it may run beside a live processor (it shows \
            the state as of the last durable batch; a torn last record is left out and noted \
            on standard error). Exit status 1 when the ledger cannot be read or re-applying \
            does not give the ledger's entries (then the options below may help: they replace \
            the saved settings).
            """)

    @Option(name: .customLong("data-dir"), help: "The processor's data directory (holds ledger/).")
    var dataDir: String

    @Option(help: "Price book (JSON) to use instead of the one saved in the data directory.")
    var prices: String?

    @Option(name: .customLong("dedupe-window"), help: "Use this dedupe window instead of the saved one (e.g. 24h).")
    var dedupeWindow: String?

    @Option(name: .customLong("expiry-grace"), help: "Use this expiry grace instead of the saved one (e.g. 1h).")
    var expiryGrace: String?

    func run() throws {
        let store = try openLedgerReadOnly(dataDirectory: dataDir)
        if let torn = store.recoveryReport.tornTail {
            printError("drawdown state: the last record is torn (a crash mid-write) and left out: \(torn)")
        }
        let settings = try resolvedSettings()
        let rebuilt: LedgerReplay.Rebuilt
        do {
            rebuilt = try LedgerReplay.rebuild(ledger: store, settings: settings)
        } catch {
            throw CLIError("\(error)")
        }
        let stdout = OutputFile.standardOutput()
        stdout.write(StateDocument.render(rebuilt.engines))
        stdout.flush()
    }

    /// The saved settings (defaults when none were saved), with the options laid over them.
    private func resolvedSettings() throws -> EngineSettings {
        var saved: EngineSettings
        do {
            saved = try EngineSettings.load(dataDirectory: dataDir) ?? EngineSettings(config: EngineConfig(), priceBook: nil)
        } catch {
            throw CLIError("\(error)")
        }
        var config = saved.config
        if let dedupeWindow {
            guard let window = DurationParser.nanoseconds(dedupeWindow) else {
                throw ValidationError("--dedupe-window: not a duration: \(dedupeWindow) (e.g. 24h, 90m, 500ms)")
            }
            config.dedupeWindow = window
        }
        if let expiryGrace {
            guard let grace = DurationParser.nanoseconds(expiryGrace) else {
                throw ValidationError("--expiry-grace: not a duration: \(expiryGrace) (e.g. 1h, 30m)")
            }
            config.expiryGrace = grace
        }
        if let prices {
            do {
                return try EngineSettings(config: config, priceBookJSON: try readAll(prices, what: "price book"))
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("\(prices): \(error)")
            }
        }
        saved.config = config
        return saved
    }
}
