import Foundation
import TestHarness
import XCTest

@testable import gpubroker

/// Runs `executable` to its end; standard output and error together.
func runProcess(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// `gpubroker serve` with the issue 17 settings: HTTPS with a SIGHUP reload, the
/// connection caps, and the warning for clear text on a non-loopback address.
final class ServeHardeningTests: XCTestCase {
    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("gpubroker") }

    func tool(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments)
    }

    func certificate(_ directory: String, _ name: String) throws {
        let made = try tool([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem",
        ])
        XCTAssertEqual(made.status, 0, made.output)
    }

    /// `curl` verifying against `ca`: the status, or "000" when the handshake failed.
    func get(_ port: Int, ca: String) throws -> String {
        try tool(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert", ca,
                  "https://127.0.0.1:\(port)/healthz"]).output.suffix(3).description
    }

    func serve(_ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--database-url", try TestDatabase.create(), "--admin-token", String(repeating: "t", count: 32)] + arguments
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    func waitFor(_ what: String, within seconds: Double = 30, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return }
            usleep(100_000)
        }
        XCTFail("\(what) within \(seconds) s")
    }

    func testHTTPSWithReloadOnSIGHUPAndConnectionCaps() throws {
        let directory = NSTemporaryDirectory() + "gpb-serve-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try certificate(directory, "first")
        try certificate(directory, "second")
        try FileManager.default.copyItem(atPath: "\(directory)/first.pem", toPath: "\(directory)/cert.pem")
        try FileManager.default.copyItem(atPath: "\(directory)/first.key", toPath: "\(directory)/key.pem")
        let port = try freePort()
        let log = "\(directory)/serve.log"
        let broker = try serve(
            ["--listen", "127.0.0.1:\(port)", "--tls-cert", "\(directory)/cert.pem", "--tls-key", "\(directory)/key.pem",
             "--max-connections-per-ip", "2", "--log-level", "notice"],
            log: log)
        defer {
            broker.terminate()
            broker.waitUntilExit()
        }
        try waitFor("HTTPS ready") { try get(port, ca: "\(directory)/first.pem") == "200" }

        // The per-IP cap: two connections held, a third is closed unanswered.
        let probe = try tool(["python3", "-c", """
            import socket, time
            held = [socket.create_connection(('127.0.0.1', \(port))) for _ in range(2)]
            time.sleep(0.3)
            third = socket.create_connection(('127.0.0.1', \(port)))
            third.settimeout(3)
            print('closed' if third.recv(1) == b'' else 'open')
            """])
        XCTAssertEqual(probe.output.trimmingCharacters(in: .whitespacesAndNewlines), "closed", probe.output)

        // SIGHUP after the files changed: new connections get the second certificate.
        try FileManager.default.removeItem(atPath: "\(directory)/cert.pem")
        try FileManager.default.removeItem(atPath: "\(directory)/key.pem")
        try FileManager.default.copyItem(atPath: "\(directory)/second.pem", toPath: "\(directory)/cert.pem")
        try FileManager.default.copyItem(atPath: "\(directory)/second.key", toPath: "\(directory)/key.pem")
        kill(broker.processIdentifier, SIGHUP)
        try waitFor("the reload") { try get(port, ca: "\(directory)/second.pem") == "200" }
        XCTAssertEqual(try get(port, ca: "\(directory)/first.pem"), "000", "the first certificate is no longer served")
        XCTAssertTrue(try String(contentsOfFile: log, encoding: .utf8).contains("TLS certificate reloaded"))
    }

    /// The cap was the descriptor limit minus 256: about a million under Docker.
    func testTheConnectionCapIsTheConfiguredOneWithinTheDescriptorLimit() {
        XCTAssertEqual(Serve.connectionLimit(wanted: 4096, descriptorLimit: 1_048_576), 4096)
        XCTAssertEqual(Serve.connectionLimit(wanted: 4096, descriptorLimit: 1024), 768)
        XCTAssertEqual(Serve.connectionLimit(wanted: 100, descriptorLimit: 20_000), 100)
    }

    func testClearTextOnANonLoopbackAddressIsWarnedAbout() throws {
        let log = NSTemporaryDirectory() + "gpb-serve-warn-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let broker = try serve(["--listen", "0.0.0.0:\(try freePort())", "--log-level", "warning"], log: log)
        defer {
            broker.terminate()
            broker.waitUntilExit()
        }
        try waitFor("the warning") {
            (try? String(contentsOfFile: log, encoding: .utf8))?.contains("without TLS") == true
        }
    }
}
