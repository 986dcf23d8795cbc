import DrawdownService
import DrawdownTestSupport
import Foundation
import Testing
import Yams

/// deploy/: every YAML and JSON file parses, and the manifests, compose file, Prometheus scrape
/// config and dashboard name the probes, ports, paths and metrics the binary really serves —
/// checked against the built `drawdown run --http` itself.
@Suite(.serialized) struct DeployFilesTests {
    static let deploy = repositoryRootURL().appendingPathComponent("deploy")

    static func files(ending suffixes: [String]) throws -> [URL] {
        let walker = FileManager.default.enumerator(at: deploy, includingPropertiesForKeys: nil)!
        return walker.compactMap { $0 as? URL }.filter { url in suffixes.contains { url.path.hasSuffix($0) } }.sorted { $0.path < $1.path }
    }

    static func yaml(_ relative: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: deploy.appendingPathComponent(relative), encoding: .utf8)
        return try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
    }

    @Test func everyYAMLAndJSONFileParses() throws {
        let yamls = try Self.files(ending: [".yml", ".yaml"])
        #expect(yamls.count >= 7, "\(yamls.map(\.lastPathComponent))")
        for url in yamls {
            let documents = try Yams.load_all(yaml: try String(contentsOf: url, encoding: .utf8)).map { $0 }
            #expect(!documents.isEmpty, "\(url.path): no document")
            #expect(documents.allSatisfy { $0 is [String: Any] }, "\(url.path): a document is not a mapping")
        }
        let jsons = try Self.files(ending: [".json"])
        #expect(!jsons.isEmpty)
        for url in jsons { _ = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) }
    }

    /// The dashboard's queries use only metrics the pipeline reports (MetricNames).
    @Test func dashboardQueriesNameExportedMetrics() throws {
        let known: Set<String> = [
            MetricNames.recordsConsumed, MetricNames.recordsApplied, MetricNames.duplicates, MetricNames.conflicts,
            MetricNames.rejected, MetricNames.ledgerBatches, MetricNames.ledgerBytes, MetricNames.ledgerFsync,
            MetricNames.batchRecords, MetricNames.consumerLag, MetricNames.shardQueueDepth, MetricNames.produceErrors,
            MetricNames.outputsPublished, MetricNames.recoverySeconds,
        ]
        let dashboard = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Self.deploy.appendingPathComponent("grafana/dashboards/drawdown.json"))) as! [String: Any]
        var used = Set<String>()
        for panel in dashboard["panels"] as! [[String: Any]] {
            for target in panel["targets"] as! [[String: Any]] {
                let expr = target["expr"] as! String
                var name = ""
                for c in expr + " " {
                    if c.isLetter || c.isNumber || c == "_" {
                        name.append(c)
                    } else {
                        if name.hasPrefix("drawdown_") { used.insert(name) }
                        name = ""
                    }
                }
            }
        }
        let base = Set(used.map { n in ["_bucket", "_sum", "_count"].reduce(n) { $0.hasSuffix($1) ? String($0.dropLast($1.count)) : $0 } })
        #expect(base.isSubset(of: known), "unknown metrics: \(base.subtracting(known))")
        #expect(known.subtracting([MetricNames.conflicts]).isSubset(of: base.union([MetricNames.conflicts])))
    }

    /// StatefulSet, Service, ConfigMap, compose and Prometheus agree with each other and with
    /// what `drawdown run --http` serves; the ConfigMap's config file is accepted by the binary.
    @Test(.timeLimit(.minutes(5))) func manifestsNameTheProbesAndPortsTheBinaryServes() throws {
        let statefulSet = try Self.yaml("k8s/statefulset.yaml")[0]
        #expect(statefulSet["kind"] as? String == "StatefulSet")
        let spec = statefulSet["spec"] as! [String: Any]
        #expect(spec["replicas"] as? Int == 1)
        #expect(!(spec["volumeClaimTemplates"] as! [Any]).isEmpty)
        let pod = (spec["template"] as! [String: Any])["spec"] as! [String: Any]
        let container = (pod["containers"] as! [[String: Any]])[0]
        let ports = container["ports"] as! [[String: Any]]
        let httpPort = ports.first { $0["name"] as? String == "http" }!["containerPort"] as! Int
        func probe(_ name: String) -> (path: String, port: String) {
            let get = (container[name] as! [String: Any])["httpGet"] as! [String: Any]
            return (get["path"] as! String, "\(get["port"]!)")
        }
        let liveness = probe("livenessProbe"), readiness = probe("readinessProbe"), startup = probe("startupProbe")
        #expect(liveness == ("/healthz", "http"))
        #expect(readiness == ("/readyz", "http"))
        #expect(startup.port == "http")
        let args = container["args"] as! [String]
        let configPath = args[args.firstIndex(of: "--config")! + 1]
        let mounts = container["volumeMounts"] as! [[String: Any]]
        #expect(mounts.contains { configPath.hasPrefix($0["mountPath"] as! String) })

        let configMap = try Self.yaml("k8s/configmap.yaml")[0]
        let configText = (configMap["data"] as! [String: String])[(configPath as NSString).lastPathComponent]!
        let configLines = configText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let dataDir = configLines.first { $0.hasPrefix("data-dir") }!.split(separator: "=")[1].trimmingCharacters(in: .whitespaces)
        #expect(mounts.contains { $0["mountPath"] as? String == dataDir }, "the data dir \(dataDir) is not the persistent volume")
        let httpAddress = configLines.first { $0.hasPrefix("http ") }!.split(separator: "=")[1].trimmingCharacters(in: .whitespaces)
        #expect(httpAddress.hasSuffix(":\(httpPort)"))

        let service = try Self.yaml("k8s/service.yaml")[0]
        let servicePort = ((service["spec"] as! [String: Any])["ports"] as! [[String: Any]])[0]
        #expect(servicePort["targetPort"] as? String == "http")

        let compose = try Self.yaml("docker-compose.yml")[0]
        let drawdownService = (compose["services"] as! [String: Any])["drawdown"] as! [String: Any]
        let composeHTTP = (drawdownService["environment"] as! [String: Any])["DRAWDOWN_HTTP"] as! String
        let composePort = composeHTTP.split(separator: ":").last.map(String.init)!
        #expect((drawdownService["ports"] as! [String]).contains { $0.hasSuffix(":\(composePort)") })
        let prometheus = try Self.yaml("prometheus/prometheus.yml")[0]
        let job = (prometheus["scrape_configs"] as! [[String: Any]]).first { $0["job_name"] as? String == "drawdown" }!
        let metricsPath = job["metrics_path"] as! String
        let targets = ((job["static_configs"] as! [[String: Any]])[0]["targets"] as! [String])
        #expect(targets == ["drawdown:\(composePort)"])
        let dockerfile = try String(contentsOf: Self.deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("EXPOSE \(httpPort)"))

        // The ConfigMap's file, as the binary reads it (data dir overridden: a flag wins).
        let dir = try OpsTemporaryDirectory("deploy")
        defer { dir.remove() }
        let conf = dir.path("drawdown.conf")
        try configText.write(toFile: conf, atomically: true, encoding: .utf8)
        let check = try runProcess(drawdownBinaryURL(), ["run", "--check-config", "--config", conf, "--data-dir", dir.path("data")])
        #expect(check.status == 0, "\(check.stderrText)")

        // The binary serves those paths.
        let broker = try TestDevBroker(topics: ["usage:2", "credit-commands:2", "balance-changes:2", "alerts:2", "drawdown.dead-letters:2"])
        defer { broker.stop() }
        let run = try RunningProcessor(
            ["--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", dir.path("data"), "--http", "127.0.0.1:0",
             "--log-format", "json"],
            logPath: dir.path("run.log"))
        #expect(try run.get(liveness.path).status == 200)
        try run.waitFor("\(readiness.path) 200") { try run.get(readiness.path).status == 200 }
        let metrics = try run.get(metricsPath)
        #expect(metrics.status == 200)
        _ = try PrometheusText.parse(metrics.text)
        #expect(try run.stop() == 0)
        // --log-format json (as the image sets it): every line of ours is one JSON object.
        let lines = run.log.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 4, "\(run.log)")
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["time"] is String && object?["level"] is String && object?["message"] is String, "\(line)")
        }
        #expect(lines.contains { $0.contains("shutdown complete") })
    }
}
