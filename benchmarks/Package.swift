// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so the main build never pays for them.
// Run with `make bench` (or `swift package benchmark` here).
let package = Package(
    name: "drawdown-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "drawdown", path: "../"),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.29.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Our consumer vs a drain written directly against librdkafka's C API, same run.
        .executableTarget(
            name: "KafkaConsume",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "DrawdownKafka", package: "drawdown"),
            ],
            path: "Benchmarks/KafkaConsume",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // Parse-only, apply-only and parse+apply vs a loop that only splits lines.
        .executableTarget(
            name: "Engine",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "DrawdownCore", package: "drawdown"),
                "EngineStages",
            ],
            path: "Benchmarks/Engine",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        // The stages the engine benchmarks time, shared with EngineFigures.
        .target(
            name: "EngineStages",
            dependencies: [.product(name: "DrawdownCore", package: "drawdown")],
            path: "Benchmarks/EngineStages"
        ),
        // Prints the engine figures in one plain run, and writes the workload file for
        // timing `drawdown process`: `swift run -c release EngineFigures [--write DIR]`.
        .executableTarget(
            name: "EngineFigures",
            dependencies: ["EngineStages", .product(name: "DrawdownCore", package: "drawdown")],
            path: "Benchmarks/EngineFigures"
        ),
        // Replay throughput against the raw ledger drain in the same run, and the time to
        // restore state from a snapshot plus N batches: `swift run -c release Replay`.
        .executableTarget(
            name: "Replay",
            dependencies: [
                .product(name: "DrawdownCore", package: "drawdown"),
                .product(name: "DrawdownLedger", package: "drawdown"),
                .product(name: "DrawdownService", package: "drawdown"),
            ],
            path: "Benchmarks/Replay"
        ),
        // `drawdown run --stop-at-end` over 1M events on a dev-broker process versus our
        // consumer's raw drain of the same topic, same run; recovery after kill -9.
        // `swift run -c release EndToEnd` (needs ../.build/release/drawdown).
        .executableTarget(
            name: "EndToEnd",
            dependencies: [
                .product(name: "DrawdownCore", package: "drawdown"),
                .product(name: "DrawdownKafka", package: "drawdown"),
            ],
            path: "Benchmarks/EndToEnd"
        ),
    ]
)
