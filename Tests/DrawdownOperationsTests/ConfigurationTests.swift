import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown run` configuration through the built binary: precedence (flag > environment >
/// file > default) and exit status 2, naming the problem, before anything is read or written.
@Suite struct ConfigurationTests {
    /// Runs `drawdown run ARGS` with only `environment` (plus PATH) set.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return try runProcess(drawdownBinaryURL(), ["run"] + arguments, environment: env)
    }

    @Test func flagBeatsEnvironmentBeatsFileBeatsDefault() throws {
        let dir = try OpsTemporaryDirectory("config-precedence")
        defer { dir.remove() }
        let file = dir.path("drawdown.conf")
        try """
            # comment
            brokers = file-broker:9092
            topic = file-topic
            data-dir = \(dir.path("data"))
            group = file-group
            batch-max = 111
            kafka-option = socket.timeout.ms=12345

            """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try run(
            ["--check-config", "--config", file, "--group", "flag-group"],
            environment: ["DRAWDOWN_GROUP": "env-group", "DRAWDOWN_BATCH_MAX": "222", "DRAWDOWN_TOPIC": "a,b"])
        #expect(result.status == 0, "\(result.stderrText)")
        let lines = Set(result.stdoutText.split(separator: "\n").map(String.init))
        #expect(lines.contains("group = flag-group  # --group"))
        #expect(lines.contains("batch-max = 222  # DRAWDOWN_BATCH_MAX"))
        #expect(lines.contains("topic = a  # DRAWDOWN_TOPIC"))
        #expect(lines.contains("topic = b  # DRAWDOWN_TOPIC"))
        #expect(lines.contains("brokers = file-broker:9092  # \(file): brokers"))
        #expect(lines.contains("kafka-option = socket.timeout.ms=12345  # \(file): kafka-option"))
        #expect(lines.contains("# batch-interval: default"))
        // Nothing was created: the data directory does not exist after the check.
        #expect(!FileManager.default.fileExists(atPath: dir.path("data")))
    }

    /// Each case: arguments, environment, and text the message must contain. Every one exits 2
    /// and leaves the data directory untouched.
    @Test func invalidConfigurationExitsTwoNamingTheProblem() throws {
        let dir = try OpsTemporaryDirectory("config-invalid")
        defer { dir.remove() }
        let data = dir.path("data")
        let base = ["--brokers", "127.0.0.1:1", "--topic", "usage", "--data-dir", data]
        let badPrices = dir.path("bad-prices.json")
        try "{\"meters\": 12}".write(toFile: badPrices, atomically: true, encoding: .utf8)
        let badFile = dir.path("bad.conf")
        try "brokers = x:1\nbatch-sizee = 5\n".write(toFile: badFile, atomically: true, encoding: .utf8)
        let cases: [(args: [String], env: [String: String], mentions: [String])] = [
            (base + ["--no-such-option", "1"], [:], ["no-such-option"]),
            (base + ["--prices", dir.path("missing.json")], [:], ["--prices", "missing.json"]),
            (base + ["--prices", badPrices], [:], ["--prices", "bad-prices.json"]),
            (base + ["--batch-interval", "5 parsecs"], [:], ["--batch-interval", "5 parsecs"]),
            (base, ["DRAWDOWN_DEDUPE_WINDOW": "forever"], ["DRAWDOWN_DEDUPE_WINDOW", "forever"]),
            (base + ["--shards", "0"], [:], ["--shards"]),
            (base + ["--log-format", "xml"], [:], ["--log-format", "xml"]),
            (base + ["--http", "nowhere"], [:], ["--http", "nowhere"]),
            (base + ["--kafka-option", "no.such.property=1"], [:], ["--kafka-option", "no.such.property"]),
            (base + ["--kafka-option", "enable.auto.commit=true"], [:], ["enable.auto.commit"]),
            (["--topic", "usage", "--data-dir", data], [:], ["--brokers"]),
            (base + ["--config", dir.path("missing.conf")], [:], ["--config", "missing.conf"]),
            (["--config", badFile], [:], ["bad.conf", "line 2", "batch-sizee"]),
            (["--brokers", "x:1", "--topic", "t", "--data-dir", dir.path("no/such/parent/data")], [:], ["--data-dir"]),
        ]
        for c in cases {
            let result = try run(c.args, environment: c.env)
            #expect(result.status == 2, "\(c.args) \(c.env): status \(result.status): \(result.stderrText)")
            for text in c.mentions {
                #expect(result.stderrText.contains(text), "\(c.args) \(c.env): \(result.stderrText)")
            }
            #expect(!FileManager.default.fileExists(atPath: data), "\(c.args): the data directory was created")
        }
    }

    /// A data directory the process may not write: exit 2 naming --data-dir. As root (which
    /// may write anything) the binary runs as `nobody` through setpriv.
    @Test func dataDirectoryWithoutPermissionExitsTwo() throws {
        let dir = try OpsTemporaryDirectory("config-permission")
        defer { dir.remove() }
        let data = dir.path("data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        chmod(dir.url.path, 0o755)
        chmod(data, 0o555)
        let args = ["run", "--brokers", "127.0.0.1:1", "--topic", "usage", "--data-dir", data]
        let result: ProcessResult
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
                Issue.record("running as root without /usr/bin/setpriv: cannot drop privileges for this test")
                return
            }
            result = try runProcess(
                URL(fileURLWithPath: "/usr/bin/setpriv"),
                ["--reuid", "65534", "--regid", "65534", "--clear-groups", drawdownBinaryURL().path] + args,
                environment: ["PATH": "/usr/bin:/bin"])
        } else {
            result = try runProcess(drawdownBinaryURL(), args, environment: ["PATH": "/usr/bin:/bin"])
        }
        #expect(result.status == 2, "\(result.stderrText)")
        #expect(result.stderrText.contains("--data-dir"), "\(result.stderrText)")
        #expect(result.stderrText.contains("permission"), "\(result.stderrText)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: data)) == [], "something was written")
    }

    /// SPEC §5: input topics and the command topic must have the same partition count; `run`
    /// asks the cluster and refuses to start (2) before opening the ledger.
    @Test(.timeLimit(.minutes(3))) func topicsThatAreNotCoPartitionedExitTwo() throws {
        let dir = try OpsTemporaryDirectory("config-copartition")
        defer { dir.remove() }
        let broker = try TestDevBroker(topics: ["usage:4", "other:2", "credit-commands:2"])
        defer { broker.stop() }
        let data = dir.path("data")
        let base = ["--brokers", broker.bootstrapServers, "--data-dir", data, "--stop-at-end"]
        let commands = try run(base + ["--topic", "usage"])
        #expect(commands.status == 2, "\(commands.stderrText)")
        #expect(commands.stderrText.contains("--command-topic"), "\(commands.stderrText)")
        let inputs = try run(base + ["--topic", "usage", "--topic", "other", "--command-topic", ""])
        #expect(inputs.status == 2, "\(inputs.stderrText)")
        #expect(inputs.stderrText.contains("--topic"), "\(inputs.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: data + "/ledger"), "the ledger was opened")
        // Without a command topic on the cluster: not consumed, and the run goes on.
        let alone = try run(["--brokers", broker.bootstrapServers, "--data-dir", data, "--stop-at-end", "--topic", "other", "--command-topic", "missing-commands"])
        #expect(alone.status == 0, "\(alone.stderrText)")
        #expect(alone.stderrText.contains("command topic missing-commands does not exist"), "\(alone.stderrText)")
    }

    @Test func helpDocumentsEveryOptionWithItsDefaultAndEnvironmentVariable() throws {
        let result = try runProcess(drawdownBinaryURL(), ["run", "--help"])
        #expect(result.status == 0)
        let help = result.stdoutText.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for option in [
            "brokers", "topic", "data-dir", "prices", "group", "shards", "batch-max", "batch-interval", "dedupe-window",
            "expiry-grace", "snapshot-every", "balance-topic", "alert-topic", "dead-letter-topic", "command-topic",
            "stop-at-end", "http", "kafka-option", "log-level", "log-format", "shutdown-timeout", "config",
        ] {
            #expect(help.contains("--\(option)"), "--\(option) missing from --help")
            let env = "DRAWDOWN_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
            #expect(help.contains(env), "\(env) missing from --help")
        }
        for text in ["Default: 5000", "Default: 50ms", "Default: 24h", "Default: 1h", "Default: credit-commands", "Default: 30s", "Default: text"] {
            #expect(help.contains(text), "\(text) missing from --help")
        }
    }
}

/// A fresh directory under the system's temporary directory.
struct OpsTemporaryDirectory {
    let url: URL

    init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("drawdown-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() {
        _ = try? FileManager.default.removeItem(at: url)
    }
}
