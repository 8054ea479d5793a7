import Foundation
import MicroHTTP
import TestHarness
import XCTest

/// HTTPS (issue 17): certificates made by `openssl` here, clients that verify them
/// (Python's `ssl`, on OpenSSL), TLS 1.2+ only, and a certificate reload that keeps
/// established connections open.
final class TLSTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gpubroker-tls-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A self-signed certificate for 127.0.0.1 written as `name`.pem and `name`.key.
    func makeCertificate(_ name: String) throws -> (certificate: String, key: String) {
        let certificate = directory.appendingPathComponent("\(name).pem").path
        let key = directory.appendingPathComponent("\(name).key").path
        let result = try run("/usr/bin/env", [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "1", "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", key, "-out", certificate,
        ])
        XCTAssertEqual(result.status, 0, result.output)
        return (certificate, key)
    }

    @discardableResult
    func run(_ executable: String, _ arguments: [String], input: Pipe? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A Python client that verifies the server against `ca`: one request, then on
    /// each line of its standard input another one on the same connection. Prints
    /// "<TLS version> <status> <local port>" per request.
    static let client = """
        import http.client, ssl, sys, warnings
        warnings.simplefilter("ignore")
        port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        context = ssl.create_default_context(cafile=ca)
        if mode == "tls1.1":
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("ALL:@SECLEVEL=0")
        if mode == "cbc":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0")
        if mode == "client-order":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        def get():
            connection.request("GET", "/hello")
            response = connection.getresponse()
            response.read()
            print(connection.sock.version(), response.status, connection.sock.getsockname()[1], connection.sock.cipher()[0],
                  response.getheader("Strict-Transport-Security", "no-hsts").replace(" ", ""), flush=True)
        try:
            get()
        except Exception as error:
            print("failed", type(error).__name__, error, flush=True)
            sys.exit(1)
        for line in sys.stdin:
            get()
        """

    func startClient(port: Int, ca: String, mode: String = "verify") throws -> (Process, Pipe, FileHandle) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", Self.client, String(port), ca, mode]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return (process, input, output.fileHandleForReading)
    }

    func readLine(_ handle: FileHandle) -> String {
        var line = Data()
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self)
    }

    func testHTTPSIsVerifiedRefusesOldTLSAndReloadsWithoutDroppingConnections() throws {
        let first = try makeCertificate("first")
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.tls = HTTPServerTLS(certificateFile: first.certificate, keyFile: first.key)
        let server = HTTPServer(configuration: configuration, router: MicroHTTPTests.makeRouter())
        try server.start()
        defer { MicroHTTPTests.blockingShutdown(server) }

        let (kept, keptInput, keptOutput) = try startClient(port: server.port, ca: first.certificate)
        let before = readLine(keptOutput).split(separator: " ")
        XCTAssertEqual(before.count, 5, "\(before)")
        XCTAssertEqual(before.last, "max-age=31536000", "HSTS on every answer over TLS (issue 31, N8)")
        XCTAssertTrue(["TLSv1.2", "TLSv1.3"].contains(before.first ?? ""), "\(before)")
        XCTAssertEqual(before.dropFirst().first, "200")

        let old = try startClient(port: server.port, ca: first.certificate, mode: "tls1.1")
        old.1.fileHandleForWriting.closeFile()  // no second request: it ends either way
        let refused = readLine(old.2)
        old.0.waitUntilExit()
        XCTAssertTrue(refused.hasPrefix("failed"), "TLS 1.1 is refused: \(refused)")
        print("TLS 1.1 client: \(refused)")
        // Issue 31, N9: TLS 1.2 accepted CBC-SHA1 suites and let the client's order win.
        let cbc = try startClient(port: server.port, ca: first.certificate, mode: "cbc")
        cbc.1.fileHandleForWriting.closeFile()
        let cbcAnswer = readLine(cbc.2)
        cbc.0.waitUntilExit()
        XCTAssertTrue(cbcAnswer.hasPrefix("failed"), "CBC-SHA1 suites are refused: \(cbcAnswer)")
        let ordered = try startClient(port: server.port, ca: first.certificate, mode: "client-order")
        ordered.1.fileHandleForWriting.closeFile()
        let chosen = readLine(ordered.2).split(separator: " ")
        ordered.0.waitUntilExit()
        XCTAssertEqual(chosen.dropLast().last, "ECDHE-ECDSA-AES256-GCM-SHA384", "the server's order wins over the client's: \(chosen)")

        // A new certificate in place of the first (as a renewal writes it), then the reload.
        let second = try makeCertificate("second")
        let original = directory.appendingPathComponent("original.pem").path
        try FileManager.default.copyItem(atPath: first.certificate, toPath: original)
        try FileManager.default.removeItem(atPath: first.certificate)
        try FileManager.default.removeItem(atPath: first.key)
        try FileManager.default.copyItem(atPath: second.certificate, toPath: first.certificate)
        try FileManager.default.copyItem(atPath: second.key, toPath: first.key)
        try server.reloadTLSCertificate()

        keptInput.fileHandleForWriting.write(Data("\n".utf8))
        let after = readLine(keptOutput).split(separator: " ")
        XCTAssertEqual(after, before, "the connection opened before the reload is still served, on the same socket")
        keptInput.fileHandleForWriting.closeFile()
        kept.waitUntilExit()

        let (renewed, renewedInput, renewedOutput) = try startClient(port: server.port, ca: second.certificate)
        renewedInput.fileHandleForWriting.closeFile()
        XCTAssertTrue(readLine(renewedOutput).contains(" 200 "), "new connections get the new certificate")
        renewed.waitUntilExit()
        let (stale, staleInput, staleOutput) = try startClient(port: server.port, ca: original)
        staleInput.fileHandleForWriting.closeFile()
        XCTAssertTrue(readLine(staleOutput).hasPrefix("failed"), "the first certificate is no longer served")
        stale.waitUntilExit()
    }
}
