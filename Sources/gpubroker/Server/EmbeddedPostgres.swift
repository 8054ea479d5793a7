import Foundation
import Logging

/// A private PostgreSQL cluster for `gpubroker serve` without a database URL: the
/// system's server binaries, a data directory under the broker's data dir, a Unix
/// socket inside it and no TCP port. PostgreSQL refuses to run as root, so as root
/// the server runs as the `postgres` system user.
final class EmbeddedPostgres: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let binDirectory: String
    let dataDirectory: String
    let socketDirectory: String
    let logFile: String
    private let runAs: String?
    private let logger: Logger

    init(directory: String, logger: Logger) throws {
        self.logger = logger
        guard let bin = Self.findBinaries() else {
            throw Failure(
                description:
                    "PostgreSQL server binaries not found (looked at `pg_config --bindir` and /usr/lib/postgresql/*/bin): install the 'postgresql' package (apt-get install postgresql), or pass --database-url")
        }
        binDirectory = bin
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        dataDirectory = root + "/pgdata"
        socketDirectory = root
        logFile = root + "/postgres.log"
        runAs = getuid() == 0 ? "postgres" : nil
        // A Unix socket path is limited to 107 bytes.
        if (socketDirectory + "/.s.PGSQL.5432").utf8.count > 100 {
            throw Failure(description: "data directory path is too long for a Unix socket: choose a shorter --data-dir")
        }
    }

    /// libpq connection parameters for the running cluster.
    var connectionParameters: [String: String] {
        ["host": socketDirectory, "port": "5432", "user": "postgres", "dbname": "postgres"]
    }

    /// The same as a libpq URL, for psql or `--database-url`.
    var url: String {
        "postgresql://postgres@/postgres?host=" + (socketDirectory.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? socketDirectory)
    }

    /// Creates the cluster on first use, then starts it and waits until it accepts
    /// connections; false when it was running already (a broker serves it).
    @discardableResult
    func start() throws -> Bool {
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        chmod(socketDirectory, 0o700)
        if let runAs {
            try run("/bin/chown", [runAs, socketDirectory], asServerUser: false)
            do {
                try run("/usr/bin/test", ["-w", socketDirectory], asServerUser: true)
            } catch {
                throw Failure(
                    description:
                        "the '\(runAs)' user cannot write to \(socketDirectory) (a parent directory is not searchable by it): choose a --data-dir such as /var/lib/gpubroker")
            }
        }
        if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            logger.info("initialising embedded PostgreSQL", metadata: ["path": "\(dataDirectory)"])
            try run(
                binDirectory + "/initdb",
                ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"],
                asServerUser: true)
            let settings = """

                # gpubroker embedded mode: Unix socket only, inside the data directory. The port
                # is set so that a PGPORT in the broker's environment cannot move the socket.
                listen_addresses = ''
                port = 5432
                unix_socket_directories = '\(socketDirectory)'
                unix_socket_permissions = 0700
                max_connections = 200

                """
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(settings.utf8))
            try handle.close()
        }
        if isRunning() {
            logger.info("embedded PostgreSQL already running", metadata: ["path": "\(dataDirectory)", "url": "\(url)"])
            return false
        }
        try run(
            binDirectory + "/pg_ctl", ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "start"],
            asServerUser: true)
        logger.notice("embedded PostgreSQL started", metadata: ["url": "\(url)"])
        return true
    }

    func stop() {
        do {
            try run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"], asServerUser: true)
            logger.info("embedded PostgreSQL stopped")
        } catch {
            logger.error("stopping embedded PostgreSQL failed", metadata: ["error": "\(error)"])
        }
    }

    private func isRunning() -> Bool {
        (try? run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "status"], asServerUser: true)) != nil
    }

    private func run(_ executable: String, _ arguments: [String], asServerUser: Bool) throws {
        let command = asServerUser && runAs != nil ? ["/sbin/runuser", "-u", runAs!, "--", executable] + arguments : [executable] + arguments
        let (status, output) = try Subprocess.run(command)
        if status != 0 {
            throw Failure(
                description: "\((executable as NSString).lastPathComponent) failed (\(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func findBinaries() -> String? {
        func usable(_ directory: String) -> Bool {
            FileManager.default.isExecutableFile(atPath: directory + "/initdb")
                && FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl")
        }
        if let (status, output) = try? Subprocess.run(["/usr/bin/env", "pg_config", "--bindir"]), status == 0 {
            let directory = output.trimmingCharacters(in: .whitespacesAndNewlines)
            if usable(directory) { return directory }
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }.first(where: usable)
    }
}
