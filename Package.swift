// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "drawdown",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "drawdown", targets: ["drawdown"]),
        .library(name: "DrawdownCore", targets: ["DrawdownCore"]),
        .library(name: "DrawdownKafka", targets: ["DrawdownKafka"]),
        .library(name: "DrawdownLedger", targets: ["DrawdownLedger"]),
        .library(name: "DrawdownService", targets: ["DrawdownService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        // Operating `drawdown run`: the HTTP API, Prometheus metrics, graceful lifecycle.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Tests only: parsing deploy/'s YAML.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(
            name: "CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),

        // Pure, deterministic: money, messages, rating, the drawdown engine.
        .target(name: "DrawdownCore", swiftSettings: strict),
        // The only code that touches librdkafka.
        .target(
            name: "DrawdownKafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Batch encoding, the durable ledger store, snapshots, recovery.
        .target(
            name: "DrawdownLedger",
            dependencies: ["DrawdownCore", "CZstd", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // consume -> shard -> apply -> commit -> publish.
        .target(
            name: "DrawdownService",
            dependencies: [
                "DrawdownCore", "DrawdownKafka", "DrawdownLedger",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        // `drawdown run --http`: balances, ledger pages, command intake, probes, metrics;
        // the service lifecycle. Its own target so Hummingbird's build cost stays here.
        .target(
            name: "DrawdownHTTP",
            dependencies: [
                "DrawdownCore", "DrawdownKafka", "DrawdownLedger", "DrawdownService",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "drawdown",
            dependencies: [
                "DrawdownCore", "DrawdownKafka", "DrawdownLedger", "DrawdownService", "DrawdownHTTP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Shared by the test targets: locating the built binary, running subprocesses.
        .target(
            name: "DrawdownTestSupport", dependencies: ["DrawdownCore", "DrawdownKafka"], path: "Tests/DrawdownTestSupport",
            swiftSettings: strict),
        .testTarget(name: "DrawdownCoreTests", dependencies: ["DrawdownCore", "DrawdownTestSupport"], swiftSettings: strict),
        .testTarget(name: "DrawdownKafkaTests", dependencies: ["DrawdownKafka", "DrawdownTestSupport", "CRdKafka"], swiftSettings: strict),
        .testTarget(name: "DrawdownLedgerTests", dependencies: ["DrawdownLedger", "DrawdownTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "DrawdownServiceTests",
            dependencies: [
                "DrawdownService", "DrawdownCore", "DrawdownKafka", "DrawdownLedger", "DrawdownTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // End-to-end tests that run the built `drawdown` binary.
        .testTarget(name: "DrawdownCLITests", dependencies: ["DrawdownCore", "DrawdownLedger", "DrawdownKafka", "DrawdownTestSupport"], swiftSettings: strict),
        // `drawdown run --http` through the built binary and a dev broker; deploy/ files.
        .testTarget(
            name: "DrawdownOperationsTests",
            dependencies: [
                "DrawdownCore", "DrawdownKafka", "DrawdownLedger", "DrawdownService", "DrawdownHTTP", "DrawdownTestSupport",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
    ]
)
