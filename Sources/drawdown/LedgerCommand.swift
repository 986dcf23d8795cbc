import ArgumentParser

struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ledger", abstract: "Not yet available.")
    func run() throws { throw ValidationError("drawdown ledger is not yet available") }
}
