import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a server and token, then keep them in ~/.config/gpubroker/config (mode 0600).",
        discussion: "The token comes from --token, else GPUBROKER_TOKEN, else the first line of stdin (so it stays out of shell history).")

    @Option(help: ArgumentHelp("Broker URL. Env: GPUBROKER_URL. Default http://127.0.0.1:8080.", valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("Bearer token (tenant or admin). Env: GPUBROKER_TOKEN.", valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp(
        "Keep them as this context (default: the server's host:port) and make it the current one.", valueName: "name"))
    var context: String?

    func run() async throws {
        let server = setting(server, "GPUBROKER_URL") ?? ClientConfiguration.defaultServer
        guard let token = setting(token, "GPUBROKER_TOKEN") ?? Self.tokenFromStdin() else {
            throw ValidationError("no token: pass --token, set GPUBROKER_TOKEN, or write it to stdin")
        }
        let path = ClientConfiguration.defaultPath()
        try await reportingFailures {
            let regions = try await BrokerClient(server: try ClientConfiguration.serverURL(server), token: token).regions()
            var file = try ClientConfigFile.read(path: path) ?? ClientConfigFile()
            let name = context ?? Self.contextName(server)
            file.set(name, ClientConfiguration(server: server, token: token))
            file.current = name
            try file.write(path: path)
            let count = regions["regions"]?.arrayValue?.count ?? 0
            Terminal.write("logged in to \(server) (\(count) regions) as context \(name); settings in \(path)\n", to: .standardError)
        }
    }

    /// A context's default name: the server's host and port.
    static func contextName(_ server: String) -> String {
        guard let url = URL(string: server), let host = url.host else { return server }
        return url.port.map { "\(host):\($0)" } ?? host
    }

    /// The first line of stdin; at a terminal after a prompt, not echoed.
    static func tokenFromStdin() -> String? {
        let terminal = isatty(STDIN_FILENO) == 1
        var saved = termios()
        if terminal, tcgetattr(STDIN_FILENO, &saved) == 0 {
            Terminal.write("token: ", to: .standardError)
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        }
        defer {
            if terminal {
                tcsetattr(STDIN_FILENO, TCSANOW, &saved)
                Terminal.write("\n", to: .standardError)
            }
        }
        guard let line = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces), !line.isEmpty else { return nil }
        return line
    }
}
