import ArgumentParser

struct ProcessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process", abstract: "Apply a JSON-lines file as one partition.")
    func run() throws {}
}
