import ArgumentParser

@main
struct Drawdown: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drawdown",
        abstract: "Credit-metering stream processor: exact, deduplicated drawdown of usage against credit grants.",
        subcommands: [
            RunCommand.self, ProcessCommand.self, StateCommand.self, LedgerCommand.self, DemoCommand.self, DevBrokerCommand.self,
            ReplayCommand.self,
        ]
    )
}
