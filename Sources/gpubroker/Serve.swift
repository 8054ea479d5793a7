import ArgumentParser
import BrokerAPI
import BrokerConsole
import BrokerEvents
import BrokerStore
import BrokerWorkers
import Foundation
import Logging
import Metrics
import MicroHTTP
import PostgresClient
import Prometheus
import Synchronization

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the broker: HTTP API, web console (/console/) and background workers (the default command).",
        discussion: "Without --database-url it starts an embedded PostgreSQL under --data-dir and stops it on exit.")

    @Option(help: ArgumentHelp("Address to listen on. Env: GPUBROKER_LISTEN. Default 127.0.0.1:8080.", valueName: "host:port"))
    var listen: String?

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp(
        "Admin bearer token. Env: GPUBROKER_ADMIN_TOKEN. Default: generated once and kept in <data-dir>/admin-token.",
        valueName: "token"))
    var adminToken: String?

    @Option(help: ArgumentHelp(
        "Directory for the embedded PostgreSQL and the generated admin token. Env: GPUBROKER_DATA_DIR. Default ./.gpubroker.",
        valueName: "dir"))
    var dataDir: String?

    @Option(help: ArgumentHelp(
        "Seconds between worker runs (lease expiry, idle release, pending admission). Env: GPUBROKER_RECONCILE_INTERVAL. Default 5.",
        valueName: "seconds"))
    var reconcileInterval: Double?

    @Option(help: ArgumentHelp(
        "Seconds between readings of the month-to-date spend and GPU-hours on /metrics. Env: GPUBROKER_USAGE_METRICS_INTERVAL. Default 60.",
        valueName: "seconds"))
    var usageMetricsInterval: Double?

    @Option(help: ArgumentHelp(
        "Remove allocations that ended longer ago than this (days or hours, at least 31 days, for example 90d), with their instances and ledger rows, and older inventory events; verify's checkpoint keeps their sums. Env: GPUBROKER_RETAIN_HISTORY. Default: keep everything.",
        valueName: "age"))
    var retainHistory: String?

    @Option(help: ArgumentHelp("Database connections per broker process. Env: GPUBROKER_DB_POOL_SIZE. Default 16.", valueName: "n"))
    var dbPoolSize: Int?

    @Option(help: ArgumentHelp("HTTP server threads. Env: GPUBROKER_HTTP_THREADS. Default: 2 × cores.", valueName: "n"))
    var httpThreads: Int?

    @Option(help: ArgumentHelp(
        "Requests per second each tenant may make (token bucket); off when unset. Env: GPUBROKER_TENANT_RATE_LIMIT.",
        valueName: "rps"))
    var tenantRateLimit: Double?

    @Option(help: ArgumentHelp(
        "Burst size of the tenant rate limit. Env: GPUBROKER_TENANT_RATE_BURST. Default: 2 × the rate.", valueName: "n"))
    var tenantRateBurst: Double?

    @Option(help: ArgumentHelp(
        "Failed authentications per second per client address (burst 4 × this); beyond, 429 without a token lookup. Raise it when clients reach the broker through one proxy address. Env: GPUBROKER_AUTH_FAILURE_RATE. Default 5.",
        valueName: "n"))
    var authFailureRate: Double?

    @Option(help: ArgumentHelp(
        "Most simultaneous connections (never more than the descriptor limit allows). Env: GPUBROKER_MAX_CONNECTIONS. Default 4096.",
        valueName: "n"))
    var maxConnections: Int?

    @Option(help: ArgumentHelp(
        "Most simultaneous connections from one IP address. Env: GPUBROKER_MAX_CONNECTIONS_PER_IP. Default: half of --max-connections.",
        valueName: "n"))
    var maxConnectionsPerIp: Int?

    @Option(help: ArgumentHelp(
        "Seconds a request's line, headers and body may take to arrive; slower connections are closed. Env: GPUBROKER_REQUEST_TIMEOUT. Default 30.",
        valueName: "seconds"))
    var requestTimeout: Int?

    @Option(help: ArgumentHelp(
        "Serve HTTPS with this PEM certificate chain (needs --tls-key; SIGHUP reloads both files). Env: GPUBROKER_TLS_CERT.",
        valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The PEM private key of --tls-cert. Env: GPUBROKER_TLS_KEY.", valueName: "file"))
    var tlsKey: String?

    @Flag(help: "Seed example regions, pools and a demo tenant (its token is logged). Env: GPUBROKER_DEMO=1.")
    var demo = false

    @Flag(help: """
        Let tenants register webhook URLs whose host is a loopback, link-local or private address \
        (refused by default, so that a tenant cannot make the broker call internal services). Env: GPUBROKER_WEBHOOK_ALLOW_PRIVATE=1.
        """)
    var webhookAllowPrivate = false

    @Option(help: ArgumentHelp(
        "Webhook deliveries this broker sends at once; 0: it sends none (other brokers do). Env: GPUBROKER_WEBHOOK_SENDERS. Default 32.",
        valueName: "n"))
    var webhookSenders: Int?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Env: GPUBROKER_LOG_LEVEL. Default info.", valueName: "level"))
    var logLevel: String?

    func run() async throws {
        let level = Logger.Level(rawValue: setting(logLevel, "GPUBROKER_LOG_LEVEL") ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gpubroker")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let (host, port) = try Self.parseListen(setting(listen, "GPUBROKER_LISTEN") ?? "127.0.0.1:8080")
        let directory = setting(dataDir, "GPUBROKER_DATA_DIR") ?? ".gpubroker"
        let interval = try Self.positive(setting(reconcileInterval.map { "\($0)" }, "GPUBROKER_RECONCILE_INTERVAL") ?? "5", "reconcile-interval")
        let usageInterval = try Self.positive(
            setting(usageMetricsInterval.map { "\($0)" }, "GPUBROKER_USAGE_METRICS_INTERVAL") ?? "60", "usage-metrics-interval")
        let retain = try setting(retainHistory, "GPUBROKER_RETAIN_HISTORY").map(Self.age)
        let poolSize = Int(try Self.positive(setting(dbPoolSize.map(String.init), "GPUBROKER_DB_POOL_SIZE") ?? "16", "db-pool-size"))
        let threads = Int(try Self.positive(
            setting(httpThreads.map(String.init), "GPUBROKER_HTTP_THREADS") ?? "\(2 * ProcessInfo.processInfo.activeProcessorCount)",
            "http-threads"))
        let rateLimiter = try setting(tenantRateLimit.map { "\($0)" }, "GPUBROKER_TENANT_RATE_LIMIT").map { rate in
            let rps = try Self.positive(rate, "tenant-rate-limit")
            let burst = try setting(tenantRateBurst.map { "\($0)" }, "GPUBROKER_TENANT_RATE_BURST").map {
                try Self.positive($0, "tenant-rate-burst")
            }
            return RateLimiter(limit: .init(rate: rps, burst: burst ?? 2 * rps))
        }
        let authFailureRate = try Self.positive(
            setting(authFailureRate.map { "\($0)" }, "GPUBROKER_AUTH_FAILURE_RATE") ?? "5", "auth-failure-rate")
        let webhookURLs = WebhookURLPolicy(
            allowPrivate: webhookAllowPrivate || ProcessInfo.processInfo.environment["GPUBROKER_WEBHOOK_ALLOW_PRIVATE"] == "1")
        let senders = Int(setting(webhookSenders.map(String.init), "GPUBROKER_WEBHOOK_SENDERS") ?? "32") ?? -1
        guard senders >= 0 else { throw ValidationError("--webhook-senders must be a whole number, 0 or more") }
        let seedDemo = demo || ProcessInfo.processInfo.environment["GPUBROKER_DEMO"] == "1"
        let wantedConnections = Int(try Self.positive(
            setting(maxConnections.map(String.init), "GPUBROKER_MAX_CONNECTIONS") ?? "4096", "max-connections"))
        let connections = Self.connectionLimit(
            wanted: wantedConnections, descriptorLimit: Self.raiseDescriptorLimit(wanted: wantedConnections + 256))
        let perIP = Int(try Self.positive(
            setting(maxConnectionsPerIp.map(String.init), "GPUBROKER_MAX_CONNECTIONS_PER_IP") ?? "\(max(1, connections / 2))",
            "max-connections-per-ip"))
        let timeout = Int(try Self.positive(
            setting(requestTimeout.map(String.init), "GPUBROKER_REQUEST_TIMEOUT") ?? "30", "request-timeout"))
        let tls = try Self.tls(certificate: setting(tlsCert, "GPUBROKER_TLS_CERT"), key: setting(tlsKey, "GPUBROKER_TLS_KEY"))

        var embedded: EmbeddedPostgres? = nil
        let configuration: PostgresConfiguration
        if let url = database.resolvedURL {
            configuration = PostgresConfiguration(url: url)
        } else {
            let cluster = try EmbeddedPostgres(directory: directory, logger: logger)
            try cluster.start()
            embedded = cluster
            configuration = PostgresConfiguration(parameters: cluster.connectionParameters)
        }
        defer { embedded?.stop() }

        try await Self.migrate(configuration, logger: logger)
        let token = try setting(adminToken, "GPUBROKER_ADMIN_TOKEN") ?? AdminToken.loadOrCreate(directory: directory, logger: logger)

        let pool = PostgresPool(configuration: configuration, size: poolSize)
        let inventory = InventoryStore(pool: pool)
        let tenants = TenantStore(pool: pool)
        if seedDemo {
            try await DemoData.seed(inventory: inventory, tenants: tenants, logger: logger)
        }
        let allocations = AllocationStore(pool: pool)
        let admission = WakeSignal()
        let changes = ChangeNotifications(
            configuration: configuration, inventory: inventory, tenants: tenants, allocations: allocations,
            logger: logger, capacityAppeared: admission.signal)
        defer { changes.stop() }
        let services = BrokerServices(
            inventory: inventory, tenants: tenants, allocations: allocations,
            policies: PolicyStore(pool: pool), usage: UsageStore(pool: pool), adminToken: token,
            metricsText: {
                var buffer: [UInt8] = []
                registry.emit(into: &buffer)
                return String(decoding: buffer, as: UTF8.self)
            },
            readinessProblem: { await Self.readinessProblem(pool) },
            logger: logger, rateLimiter: rateLimiter,
            authFailureLimit: RateLimiter.Limit(rate: authFailureRate, burst: 4 * authFailureRate), webhookURLs: webhookURLs)

        var http = HTTPServerConfiguration()
        http.host = host
        http.port = port
        http.threadPoolSize = threads
        // 1,024 connections (MHD's share per worker thread is a quarter of that) let
        // 1,200 slow or idle clients lock normal requests out until they time out:
        // 4,096 by default, and the request timeout closes the slow ones.
        http.connectionLimit = connections
        http.perIPConnectionLimit = perIP
        http.requestTimeoutSeconds = timeout
        http.tls = tls
        http.errorResponder = BrokerAPI.errorResponder
        let api = BrokerAPI.router(services: services)
        var router = api
        BrokerConsole.register(on: &router, api: api)
        let server = HTTPServer(configuration: http, router: router)
        try server.start()
        logger.info("gpubroker listening", metadata: ["address": "\(tls == nil ? "http" : "https")://\(host):\(server.port)"])
        if tls == nil && !Self.isLoopback(host) {
            logger.warning(
                "listening on a non-loopback address without TLS: bearer tokens travel in clear text",
                metadata: ["address": "\(host)", "fix": "--tls-cert and --tls-key"])
        }
        let reload = tls == nil ? nil : ReloadSignal.install {
            do {
                try server.reloadTLSCertificate()
                logger.notice("TLS certificate reloaded")
            } catch {
                logger.error("TLS certificate not reloaded; the previous one stays", metadata: ["error": "\(error)"])
            }
        }

        let workers = Task {
            await BrokerWorkers(
                store: MaintenanceStore(pool: pool), meter: UsageMeter(store: UsageStore(pool: pool)),
                retention: retain.map { HistoryRetention(pool: pool, retain: $0) },
                configuration: .init(
                    interval: .milliseconds(Int64(interval * 1000)), usageInterval: .milliseconds(Int64(usageInterval * 1000))),
                logger: logger, admission: admission
            ).run()
        }
        let webhooks = Task {
            guard senders > 0 else { return }
            await WebhookSender(store: services.webhooks, policy: webhookURLs, logger: logger, concurrency: senders).run()
        }
        let signal = await ShutdownSignal.wait()
        logger.info("shutting down", metadata: ["signal": "\(signal)"])
        reload?.cancel()
        // Cancelled first: attempts in flight end now instead of at a receiver's pace.
        webhooks.cancel()
        await services.eventHub.close()
        await server.shutdown()
        workers.cancel()
        await workers.value
        await webhooks.value
        await pool.close()
        logger.info("stopped")
    }

    /// Applies migrations, waiting up to 30 s for the database to accept connections.
    static func migrate(_ configuration: PostgresConfiguration, logger: Logger) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                let connection = try PostgresConnection.connect(configuration)
                let applied = try Schema.migrate(connection)
                if !applied.isEmpty { logger.info("migrations applied", metadata: ["versions": "\(applied)"]) }
                return
            } catch let error as PostgresError where error.isConnectionProblem && ContinuousClock.now < deadline {
                logger.notice("waiting for the database", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Raises the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit) and
    /// returns the limit in force.
    static func raiseDescriptorLimit(wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < rlim_t(wanted) {
            var raised = limit
            raised.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return max(512, Int(min(limit.rlim_cur, rlim_t(Int32.max))))
    }

    /// The connection cap: what was asked for, within the descriptors left once
    /// 256 are kept for the database, files and the listening socket.
    static func connectionLimit(wanted: Int, descriptorLimit: Int) -> Int {
        max(1, min(wanted, descriptorLimit - 256))
    }

    static func tls(certificate: String?, key: String?) throws -> HTTPServerTLS? {
        switch (certificate, key) {
        case (nil, nil): return nil
        case (let certificate?, let key?): return HTTPServerTLS(certificateFile: certificate, keyFile: key)
        default: throw ValidationError("--tls-cert and --tls-key go together")
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "::1" || host.hasPrefix("127.")
    }

    static func readinessProblem(_ pool: PostgresPool) async -> String? {
        do {
            let version = try await pool.withConnection { c in
                try c.query("SELECT coalesce(max(version), 0) AS version FROM schema_migrations")[0].decode("version", as: Int.self)
            }
            return version == Schema.latestVersion ? nil : "schema version \(version), expected \(Schema.latestVersion)"
        } catch {
            return "database unreachable"
        }
    }

    static func parseListen(_ value: String) throws -> (String, Int) {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("--listen must be host:port, for example 127.0.0.1:8080 (got '\(value)')")
        }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// `--retain-history`: a whole number of days (`90d`) or hours (`2000h`), at least 31
    /// days: month-to-date spend (metrics, usage reports of the month) reads the month's
    /// ledger, and an allocation that ended longer ago than that has nothing in it.
    static func age(_ value: String) throws -> Duration {
        let hours: [Character: Int64] = ["d": 24, "h": 1]
        guard let unit = value.last, let perUnit = hours[unit], let count = Int64(value.dropLast()),
              count * perUnit >= 31 * 24, count <= 1_000_000 else {
            throw ValidationError(
                "--retain-history must be a whole number of days or hours, at least 31 days (the month's spend reads the month's ledger), such as 90d (got '\(value)')")
        }
        return .seconds(count * perUnit * 3600)
    }

    static func positive(_ value: String, _ name: String) throws -> Double {
        guard let number = Double(value), number > 0, number.isFinite else {
            throw ValidationError("--\(name) must be a positive number (got '\(value)')")
        }
        return number
    }
}

/// The admin token when none is configured: generated once, kept in a 0600 file.
enum AdminToken {
    static func loadOrCreate(directory: String, logger: Logger) throws -> String {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("admin-token").path
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
            !existing.isEmpty
        {
            logger.info("admin token read from file", metadata: ["path": "\(path)"])
            return existing
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let token = "gpbadmin_" + (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write the admin token to \(path)")
        }
        logger.notice("admin token generated", metadata: ["path": "\(path)"])
        return token
    }
}

/// Waits for SIGTERM or SIGINT.
enum ShutdownSignal {
    /// Only the first signal resumes the wait.
    private static let resumed = Mutex(false)

    static func wait() async -> String {
        var sources: [any DispatchSourceSignal] = []
        let name = await withCheckedContinuation { continuation in
            for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    let first = resumed.withLock { done in
                        defer { done = true }
                        return !done
                    }
                    if first { continuation.resume(returning: name) }
                }
                source.resume()
                sources.append(source)
            }
        }
        // The sources must outlive the wait, or their handlers never run.
        withExtendedLifetime(sources) {}
        return name
    }
}

/// Runs an action on every SIGHUP (the TLS certificate reload).
enum ReloadSignal {
    static func install(_ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }
}
