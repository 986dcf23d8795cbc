import ArgumentParser
import Foundation

@main
struct Drawdown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drawdown",
        abstract: "Credit-metering stream processor: exact, deduplicated drawdown of usage against credit grants.",
        subcommands: [
            RunCommand.self, ProcessCommand.self, StateCommand.self, LedgerCommand.self, DemoCommand.self, DevBrokerCommand.self,
            ReplayCommand.self,
        ]
    )

    /// As ArgumentParser's, except that a usage error of `drawdown run` (an unknown option, a
    /// missing value) exits with status 2 like every other invalid configuration of `run`.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if arguments.first == "run", code == .validationFailure {
                FileHandle.standardError.write(Data("drawdown run: invalid configuration: \(fullMessage(for: error))\n".utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
