import DrawdownKafka
import DrawdownTestSupport
import Foundation
import Testing

/// `drawdown run --http` through the built binary against the dev broker: metrics counters
/// equal what was sent, a clean SIGTERM, then balances and ledger pages equal `drawdown state`
/// and `drawdown ledger`, command intake, authorization.
@Suite(.serialized) struct HTTPAPITests {
    static let partitions: Int32 = 4
    static let customers = (0..<8).map { "cust-\($0)" }
    static let token = "s3cret-token"

    static func topics() -> [String] {
        ["usage", "credit-commands", "balance-changes", "alerts", "drawdown.dead-letters"].map { "\($0):\(partitions)" }
    }

    /// Grants on the command topic, usage (and the exact resends, and rejects) on the usage topic.
    static func produceHistory(bootstrap: String) throws -> (records: Int, applied: Int, duplicates: Int, malformed: Int, missingField: Int) {
        let producer = try KafkaProducer(config: KafkaProducerConfig(bootstrapServers: bootstrap))
        var token: UInt64 = 0
        func send(_ topic: String, _ key: String?, _ value: String) throws {
            token += 1
            try producer.send(KafkaProducerRecord(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8)), token: token)
        }
        var applied = 0
        for (i, c) in customers.enumerated() {
            try send("credit-commands", c, #"{"type":"grant","id":"g-\#(c)","customer":"\#(c)","timestamp":"2026-11-24T10:00:00Z","amount":"\#(20 + i)","priority":10}"#)
            applied += 1
        }
        for j in 0..<15 {
            for c in customers {
                try send("usage", c, #"{"id":"u-\#(c)-\#(j)","customer":"\#(c)","timestamp":"2026-11-24T11:\#(String(format: "%02d", j)):00Z","cost":"1.5"}"#)
                applied += 1
            }
        }
        for c in customers {  // exact resends: duplicates
            try send("usage", c, #"{"id":"u-\#(c)-0","customer":"\#(c)","timestamp":"2026-11-24T11:00:00Z","cost":"1.5"}"#)
        }
        for k in 0..<3 { try send("usage", customers[k], "{broken \(k)") }
        for k in 0..<2 { try send("usage", customers[k], #"{"id":"nots-\#(k)","customer":"\#(customers[k])","cost":"1"}"#) }
        try producer.flush(timeoutMs: 60_000)
        let failed = producer.takeReports().filter { !$0.succeeded }
        guard failed.isEmpty else { throw OpsFailure("\(failed.count) records not delivered") }
        return (Int(token), applied, customers.count, 3, 2)
    }

    @Test(.timeLimit(.minutes(10))) func metricsBalancesLedgerPagesCommandsAndAuthorization() throws {
        let dir = try OpsTemporaryDirectory("http-api")
        defer { dir.remove() }
        let broker = try TestDevBroker(topics: Self.topics())
        defer { broker.stop() }
        let sent = try Self.produceHistory(bootstrap: broker.bootstrapServers)
        let data = dir.path("data")
        let args = [
            "--brokers", broker.bootstrapServers, "--topic", "usage", "--data-dir", data, "--http", "127.0.0.1:0",
            "--batch-max", "20", "--shards", "2",
        ]
        let env = ["DRAWDOWN_API_TOKEN": Self.token]

        // 1. Everything consumed: the counters equal what was sent; the text parses.
        var run = try RunningProcessor(args, logPath: dir.path("run.log"), environment: env)
        try run.waitUntilReady()
        try run.waitFor("every record counted") {
            let m = try run.metrics()
            return PrometheusText.value(m, "drawdown_records_consumed_total") == Double(sent.records)
                && PrometheusText.value(m, "drawdown_records_applied_total") == Double(sent.applied)
                && PrometheusText.value(m, "drawdown_duplicates_total") == Double(sent.duplicates)
                && PrometheusText.value(m, "drawdown_rejected_total") == Double(sent.malformed + sent.missingField)
        }
        let metrics = try run.metrics()
        #expect(PrometheusText.value(metrics, "drawdown_records_consumed_total") == Double(sent.records))
        #expect(PrometheusText.value(metrics, "drawdown_records_applied_total") == Double(sent.applied))
        #expect(PrometheusText.value(metrics, "drawdown_duplicates_total") == Double(sent.duplicates))
        #expect(PrometheusText.value(metrics, "drawdown_rejected_total", ["reason": "malformed"]) == Double(sent.malformed))
        #expect(PrometheusText.value(metrics, "drawdown_rejected_total", ["reason": "missing_field"]) == Double(sent.missingField))
        #expect(PrometheusText.value(metrics, "drawdown_ledger_batches_total") >= 1)
        for name in ["drawdown_ledger_fsync_seconds_count", "drawdown_batch_records_count", "drawdown_recovery_seconds"] {
            #expect(metrics.contains { $0.name == name }, "\(name) missing")
        }
        let labelValues = Set(metrics.flatMap { $0.labels.values })
        #expect(labelValues.isDisjoint(with: Self.customers), "a customer id in a metric label")
        #expect(try run.stop() == 0, "\(run.log.suffix(3_000))")

        // 2. Restarted on the same data directory: the API equals `drawdown state` / `drawdown ledger`.
        run = try RunningProcessor(args, logPath: dir.path("run.log"), environment: env)
        try run.waitUntilReady()
        let state = try JSONSerialization.jsonObject(with: drawdown(["state", "--data-dir", data]).stdout) as! [String: Any]
        let customersState = state["customers"] as! [String: [String: [String: Any]]]
        for c in Self.customers {
            let response = try run.get("/v1/customers/\(c)/balances", token: Self.token)
            #expect(response.status == 200, "\(response.text)")
            let body = try response.json()
            let currencies = body["currencies"] as! [String: [String: Any]]
            let expected = customersState[c]!
            #expect(Set(currencies.keys) == Set(expected.keys))
            for (currency, want) in expected {
                let got = currencies[currency]!
                #expect(LedgerComparison.decimal(got["available"] as! String) == LedgerComparison.decimal(want["available"] as! String))
                #expect(LedgerComparison.decimal(got["overage"] as! String) == LedgerComparison.decimal(want["overage"] as! String))
                let grants = Dictionary(uniqueKeysWithValues: (got["grants"] as! [[String: Any]]).map { ($0["id"] as! String, $0) })
                let wantGrants = want["grants"] as! [String: [String: Any]]
                #expect(Set(grants.keys) == Set(wantGrants.keys))
                for (id, g) in wantGrants {
                    #expect(grants[id]?["status"] as? String == g["status"] as? String)
                    #expect(LedgerComparison.decimal(grants[id]?["remaining"] as? String ?? "?") == LedgerComparison.decimal(g["remaining"] as! String))
                    #expect(grants[id]?["priority"] as? Int == 10)
                }
            }
            let asOf = body["as_of"] as! [String: Any]
            #expect((asOf["partition_seq"] as! Int) > 0)

            // Ledger pages of 4, following next_cursor, equal `drawdown ledger --customer`.
            let want = try LedgerComparison.jsonLines(drawdown(["ledger", "--data-dir", data, "--customer", c]).stdout)
            #expect(want.count > 8, "\(c): a history long enough for several pages")
            var got: [[String: Any]] = []
            var cursor: String?
            var pages = 0
            while true {
                let path = "/v1/customers/\(c)/ledger?limit=4" + (cursor.map { "&after=\($0)" } ?? "")
                let page = try run.get(path, token: Self.token)
                #expect(page.status == 200, "\(page.text)")
                let json = try page.json()
                let entries = json["entries"] as! [[String: Any]]
                #expect(entries.count <= 4)
                got += entries
                pages += 1
                cursor = json["next_cursor"] as? String
                if json["has_more"] as? Bool != true { break }
                if pages > 100 { break }
            }
            #expect(got.count == want.count, "\(c): \(got.count) entries over \(pages) pages, drawdown ledger has \(want.count)")
            for (a, b) in zip(got, want) {
                var a2 = LedgerComparison.normalized(a)
                a2["batch"] = nil
                #expect(a2 == LedgerComparison.normalized(b))
                #expect(a["partition"] as? Int == b["partition"] as? Int)
            }
        }
        #expect(try run.get("/v1/customers/nobody/balances", token: Self.token).status == 404)
        #expect(try run.get("/v1/customers/cust-0/ledger?limit=0", token: Self.token).status == 400)
        #expect(try run.get("/v1/customers/cust-0/ledger?after=garbage", token: Self.token).status == 400)

        // 3. Authorization: /v1/ needs the token; probes and metrics do not.
        for (path, token) in [("/v1/customers/cust-0/balances", nil), ("/v1/customers/cust-0/balances", "wrong"),
                              ("/v1/customers/cust-0/ledger", "s3cret-toke"), ("/v1/customers/cust-0/ledger", Self.token + "x")] {
            let response = try run.get(path, token: token)
            #expect(response.status == 401, "\(path) with \(token ?? "no token"): \(response.status)")
        }
        let basic = try MiniHTTP.request(port: run.port, "GET", "/v1/customers/cust-0/balances", headers: ["Authorization": "Basic \(Self.token)"])
        #expect(basic.status == 401)
        #expect(try run.post("/v1/commands", "{}", token: nil).status == 401)
        #expect(try run.get("/healthz").status == 200)

        // 4. Invalid commands: 400 with the engine's reason.
        let invalid: [(String, String)] = [
            ("{not json", "malformed"),
            (#"{"type":"grant","id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z"}"#, "missing_field"),
            (#"{"type":"grant","id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z","amount":"1.0000000001"}"#, "precision"),
            (#"{"type":"grant","id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z","amount":"-5"}"#, "invalid_field"),
            (#"{"type":"refund","id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z"}"#, "unknown_type"),
            (#"{"id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z","cost":"1"}"#, "unsupported_type"),
            (#"{"type":"usage","id":"x","customer":"cust-1","timestamp":"2026-11-24T12:00:00Z","cost":"1"}"#, "unsupported_type"),
        ]
        for (body, reason) in invalid {
            let response = try run.post("/v1/commands", body, token: Self.token)
            #expect(response.status == 400, "\(body): \(response.status) \(response.text)")
            #expect((try? response.json())?["error"] as? String == reason, "\(body): \(response.text)")
        }

        // 5. A grant posted shows up in the balance; the same id again is accepted and deduplicated.
        let before = try run.get("/v1/customers/cust-3/balances", token: Self.token).json()
        let available = LedgerComparison.decimal(((before["currencies"] as! [String: [String: Any]])["credits"]!["available"] as! String))
        let grant = #"{"type":"grant","id":"g-api-1","customer":"cust-3","timestamp":"2026-11-24T12:00:00Z","amount":"7.25"}"#
        let posted = try run.post("/v1/commands", grant, token: Self.token)
        #expect(posted.status == 202, "\(posted.text)")
        #expect(try posted.json()["id"] as? String == "g-api-1")
        try run.waitFor("the posted grant in the balance") {
            let body = try run.get("/v1/customers/cust-3/balances", token: Self.token).json()
            let credits = (body["currencies"] as! [String: [String: Any]])["credits"]!
            return (credits["grants"] as! [[String: Any]]).contains { $0["id"] as? String == "g-api-1" }
        }
        let after = try run.get("/v1/customers/cust-3/balances", token: Self.token).json()
        let credits = (after["currencies"] as! [String: [String: Any]])["credits"]!
        let newGrant = (credits["grants"] as! [[String: Any]]).first { $0["id"] as? String == "g-api-1" }!
        #expect(newGrant["remaining"] as? String == "7.25")
        #expect(newGrant["status"] as? String == "active")
        // Available grew by 7.25 (it was ≥ 0 before, with every other grant spent or not).
        let grown = Decimal(string: LedgerComparison.decimal(credits["available"] as! String))! - Decimal(string: available)!
        #expect(grown == Decimal(string: "7.25")!)
        let duplicatesBefore = PrometheusText.value(try run.metrics(), "drawdown_duplicates_total")
        #expect(try run.post("/v1/commands", grant, token: Self.token).status == 202)
        try run.waitFor("the resent grant deduplicated") {
            PrometheusText.value(try run.metrics(), "drawdown_duplicates_total") == duplicatesBefore + 1
        }
        let apiMetrics = try run.metrics()
        #expect(PrometheusText.value(apiMetrics, "drawdown_api_commands_total", ["result": "accepted"]) == 2)
        #expect(PrometheusText.value(apiMetrics, "drawdown_api_commands_total", ["result": "rejected"]) == Double(invalid.count))
        #expect(try run.stop() == 0, "\(run.log.suffix(3_000))")

        // 6. After the clean stop: the grant is in the ledger once, and the ledger verifies.
        let ledger = try LedgerComparison.jsonLines(drawdown(["ledger", "--data-dir", data, "--customer", "cust-3"]).stdout)
        #expect(ledger.filter { $0["type"] as? String == "grant" && $0["grant"] as? String == "g-api-1" }.count == 1)
        _ = try drawdown(["ledger", "verify", "--data-dir", data])
        // Log lines: start, recovery, assignment, shutdown — and never one per record.
        let log = run.log
        #expect(log.contains("recovered"))
        #expect(log.contains("assigned"))
        #expect(log.contains("SIGTERM"))
        #expect(log.split(separator: "\n").count < sent.records, "more log lines than records: \(log.split(separator: "\n").count)")
    }
}
