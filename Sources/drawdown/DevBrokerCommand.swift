import ArgumentParser

struct DevBrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dev-broker", abstract: "A Kafka-protocol broker for development and tests.")
    func run() throws {}
}
