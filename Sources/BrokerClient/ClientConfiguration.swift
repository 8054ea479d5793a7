import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the client finds its broker and token: `--server`/`--token`, then
/// `GPUBROKER_URL`/`GPUBROKER_TOKEN`, then the config file, whose lines are
/// `server = URL` and `token = TOKEN` (`#` starts a comment).
public struct ClientConfiguration: Sendable, Equatable {
    public var server: String?
    public var token: String?

    public static let defaultServer = "http://127.0.0.1:8080"

    public init(server: String? = nil, token: String? = nil) {
        self.server = server
        self.token = token
    }

    /// `$XDG_CONFIG_HOME/gpubroker/config`, else `$HOME/.config/gpubroker/config`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let base = environment["XDG_CONFIG_HOME"], !base.isEmpty { return base + "/gpubroker/config" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.config/gpubroker/config"
    }

    /// The server URL and token in force. The file is read only when a flag and the
    /// environment leave something unset, and refused unless only its owner can read it.
    public static func resolve(
        server: String?, token: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        path: String? = nil
    ) throws -> (server: URL, token: String?) {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var resolved = ClientConfiguration(server: server ?? env("GPUBROKER_URL"), token: token ?? env("GPUBROKER_TOKEN"))
        if resolved.server == nil || resolved.token == nil,
            let file = try read(path: path ?? defaultPath(environment: environment))
        {
            resolved.server = resolved.server ?? file.server
            resolved.token = resolved.token ?? file.token
        }
        return (try serverURL(resolved.server ?? defaultServer), resolved.token)
    }

    /// `text` as a server URL: http or https, with a host.
    public static func serverURL(_ text: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            url.host?.isEmpty == false
        else {
            throw ClientError.configuration("the server '\(text)' is not an http:// or https:// URL")
        }
        return url
    }

    /// The file's current context's settings; nil when there is no file or no current context.
    public static func read(path: String) throws -> ClientConfiguration? {
        try ClientConfigFile.read(path: path)?.settings
    }
}

/// The config file: named contexts, a server and a token each, and the one in force,
/// as kubectl keeps its contexts:
///
///     current-context = NAME
///     [context NAME]
///     server = URL
///     token = TOKEN
///
/// A file of bare `server =` and `token =` lines (written before contexts existed) is one
/// context named `default`, the current one. `#` starts a comment.
public struct ClientConfigFile: Sendable, Equatable {
    public var current: String?
    /// In the file's order.
    public private(set) var contexts: [(name: String, settings: ClientConfiguration)] = []

    public init() {}

    public static func == (a: ClientConfigFile, b: ClientConfigFile) -> Bool {
        a.current == b.current && a.contexts.map(\.name) == b.contexts.map(\.name) && a.contexts.map(\.settings) == b.contexts.map(\.settings)
    }

    public var settings: ClientConfiguration? { current.flatMap(context) }

    public func context(_ name: String) -> ClientConfiguration? { contexts.first { $0.name == name }?.settings }

    /// Adds or replaces a context.
    public mutating func set(_ name: String, _ settings: ClientConfiguration) {
        if let index = contexts.firstIndex(where: { $0.name == name }) {
            contexts[index].settings = settings
        } else {
            contexts.append((name, settings))
        }
    }

    public mutating func remove(_ name: String) {
        contexts.removeAll { $0.name == name }
        if current == name { current = nil }
    }

    /// The file; nil when there is none. Refused unless only its owner can read it.
    public static func read(path: String) throws -> ClientConfigFile? {
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw ClientError.configuration("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ClientError.configuration(
                "\(path) is mode \(String(mode, radix: 8)) but holds a token: only its owner may read it (chmod 600 \(path))")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ClientError.configuration("cannot read \(path) as UTF-8 text")
        }
        var file = ClientConfigFile()
        var section: String?
        var bare = false
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[context "), line.hasSuffix("]") {
                let name = line.dropFirst("[context ".count).dropLast().trimmingCharacters(in: .whitespaces)
                section = name
                file.set(name, file.context(name) ?? ClientConfiguration())
                continue
            }
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let name = section ?? "default"
            var settings = file.context(name) ?? ClientConfiguration()
            switch parts.first {
            case "current-context" where parts.count == 2 && section == nil:
                file.current = parts[1]
                continue
            case "server" where parts.count == 2: settings.server = parts[1]
            case "token" where parts.count == 2: settings.token = parts[1]
            default:
                throw ClientError.configuration(
                    "\(path):\(number + 1): expected 'current-context = NAME', '[context NAME]', 'server = URL' or 'token = TOKEN'")
            }
            bare = bare || section == nil
            file.set(name, settings)
        }
        if bare && file.current == nil { file.current = "default" }
        return file
    }

    /// Writes the file with mode 0600 (its folder 0700), replacing any earlier one.
    public func write(path: String) throws {
        var text = "# gpubroker client settings (keep this file mode 0600)\n"
        if let current { text += "current-context = \(current)\n" }
        for (name, settings) in contexts {
            text += "[context \(name)]\n"
            if let server = settings.server { text += "server = \(server)\n" }
            if let token = settings.token { text += "token = \(token)\n" }
        }
        let folder = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // Created 0600 by open(2) itself: FileManager.createFile writes first and narrows
        // the mode after, leaving the token readable by others (0644) meanwhile. A fresh
        // name with O_EXCL | O_NOFOLLOW: nothing planted at it is written through.
        let temporary = path + ".\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ClientError.configuration("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw ClientError.configuration("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ClientError.configuration("cannot write \(path): \(reason)")
        }
    }
}
