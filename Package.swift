// swift-tools-version:6.0
import PackageDescription

// One set of settings for every Swift target: Swift 6 language mode (strict concurrency).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "gpubroker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gpubroker", targets: ["gpubroker"]),
    ],
    dependencies: [
        // CLI parsing for the executable.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Structured logging; libraries take a Logger, only the executable bootstraps it.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // Metrics API and its Prometheus backend for GET /metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        // Kubernetes manifests arrive as YAML.
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // HMAC-SHA256 for signing webhook deliveries.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "MicroHTTP",
            dependencies: ["CMicroHTTPD"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PostgresClient",
            dependencies: ["CLibPQ"],
            swiftSettings: swiftSettings
        ),
        // The JSON codec: parser, writer, values. No dependencies.
        .target(
            name: "JSON",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BrokerCore",
            dependencies: ["JSON"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BrokerStore",
            dependencies: [
                "BrokerCore", "JSON", "PostgresClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [.embedInCode("Migrations"), .embedInCode("Definitions")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BrokerAPI",
            dependencies: [
                "BrokerCore", "BrokerEvents", "BrokerStore", "JSON", "MicroHTTP", "PostgresClient",
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA public keys for RS256 JWTs (OpenID/); the rest of JOSE is in swift-crypto proper.
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [.embedInCode("OpenAPI")],
            swiftSettings: swiftSettings
        ),
        // The web console: HTML pages over the API, assets compiled in.
        .target(
            name: "BrokerConsole",
            dependencies: ["BrokerCore", "JSON", "MicroHTTP"],
            resources: [.embedInCode("Assets")],
            swiftSettings: swiftSettings
        ),
        // The HTTP(S) client of the `/v1` API that the CLI commands use.
        .target(
            name: "BrokerClient",
            dependencies: ["BrokerCore", "JSON"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BrokerWorkers",
            dependencies: [
                "BrokerCore", "BrokerStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Change notifications, the event feed, webhooks and watch streams.
        .target(
            name: "BrokerEvents",
            dependencies: [
                "BrokerCore", "BrokerStore", "JSON", "MicroHTTP", "PostgresClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gpubroker",
            dependencies: [
                "BrokerAPI", "BrokerClient", "BrokerConsole", "BrokerCore", "BrokerEvents", "BrokerStore", "BrokerWorkers",
                "JSON", "PostgresClient", "MicroHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // SHA-256 of a manifest file: `apply`'s idempotency key.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // Placement decisions per second, run by scripts/bench.
        .executableTarget(
            name: "PlannerBenchmark",
            dependencies: ["BrokerCore"],
            swiftSettings: swiftSettings
        ),
        // Shared by every test target: test databases and the cluster, a raw HTTP client,
        // thread helpers. Knows nothing of the broker.
        .target(
            name: "TestHarness",
            dependencies: ["MicroHTTP", "PostgresClient"],
            path: "Tests/TestHarness",
            swiftSettings: swiftSettings
        ),
        // Shared by the integration tests: a fresh migrated database per test and a broker
        // to call in-process or over a socket.
        .target(
            name: "TestSupport",
            dependencies: ["BrokerAPI", "BrokerConsole", "BrokerStore", "BrokerCore", "JSON", "MicroHTTP", "PostgresClient", "TestHarness",
                           .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "MicroHTTPTests", dependencies: ["MicroHTTP", "TestHarness"], swiftSettings: swiftSettings),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient", "TestHarness"], swiftSettings: swiftSettings),
        .testTarget(name: "BrokerCoreTests", dependencies: ["BrokerCore", "JSON"], swiftSettings: swiftSettings),
        .testTarget(name: "BrokerStoreTests", dependencies: ["BrokerStore", "BrokerCore", "JSON", "PostgresClient", "TestSupport", "TestHarness"], swiftSettings: swiftSettings),
        .testTarget(name: "BrokerAPITests", dependencies: ["BrokerAPI", "BrokerConsole", "BrokerStore", "BrokerCore", "JSON", "MicroHTTP", "PostgresClient", "TestSupport", "TestHarness", .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(name: "BrokerConsoleTests", dependencies: ["BrokerConsole", "JSON", "MicroHTTP"], swiftSettings: swiftSettings),
        .testTarget(name: "BrokerWorkersTests", dependencies: ["BrokerWorkers", "BrokerStore", "BrokerCore", "PostgresClient", "TestSupport", "TestHarness"], swiftSettings: swiftSettings),
        .testTarget(name: "GPUBrokerTests", dependencies: ["gpubroker", "TestSupport", "TestHarness", "BrokerAPI", "BrokerStore", "BrokerCore", "JSON", "PostgresClient"], swiftSettings: swiftSettings),
        .testTarget(name: "ReliabilityTests", dependencies: ["gpubroker", "TestSupport", "TestHarness", "BrokerStore", "BrokerCore", "JSON", "PostgresClient"], swiftSettings: swiftSettings),
    ]
)
