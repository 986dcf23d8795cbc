import ArgumentParser

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Not yet available.")
    func run() throws { throw ValidationError("drawdown run is not yet available") }
}
