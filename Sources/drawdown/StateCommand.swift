import ArgumentParser

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Not yet available.")
    func run() throws { throw ValidationError("drawdown state is not yet available") }
}
