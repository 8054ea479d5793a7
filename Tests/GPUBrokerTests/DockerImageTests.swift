import Foundation
import XCTest

/// docker/ checked without a Docker daemon: the runtime stage installs a Debian package
/// for every shared library the binary loads (resolved with ldd, dpkg and apt-cache on
/// this Debian 12 machine, the stage's release), the build copies what the sources link
/// to, images are pinned, compose has no default admin token, and the image's
/// healthcheck passes on a ready broker.
final class DockerImageTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    func tool(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }

    /// The packages the last stage installs.
    func runtimePackages(_ dockerfile: String) throws -> [String] {
        let stage = try XCTUnwrap(dockerfile.components(separatedBy: "\nFROM ").last)
        let install = try XCTUnwrap(stage.range(of: "--no-install-recommends "))
        return stage[install.upperBound...].prefix { $0 != "\n" && $0 != "\\" && $0 != "&" }
            .split(separator: " ").map(String.init)
    }

    /// `packages` and everything they depend on, recursively.
    func closure(_ packages: [String]) throws -> Set<String> {
        let output = try tool("/usr/bin/apt-cache", [
            "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
            "--no-enhances",
        ] + packages)
        return Set(output.split(separator: "\n").filter { !$0.hasPrefix(" ") }.map { String($0.split(separator: ":")[0]) })
    }

    func testTheRuntimeStageInstallsEveryLibraryTheBinaryLoads() throws {
        let dockerfile = try Self.read("docker/Dockerfile")
        let packages = try runtimePackages(dockerfile)
        XCTAssertTrue(packages.contains("libpq5"), "\(packages)")
        // What debian-slim has before the stage installs anything: apt and bash, and theirs.
        let available = try closure(packages + ["apt", "bash"])
        let ldd = try tool("/usr/bin/ldd", [Binary.url.path])
        // The Swift runtime is linked in statically (--static-swift-stdlib).
        let libraries = ldd.split(separator: "\n").compactMap { line -> String? in
            guard let arrow = line.range(of: "=> /") else { return nil }
            return String(line[line.index(before: arrow.upperBound)...].prefix { $0 != " " })
        }.filter { !$0.contains("/usr/lib/swift/") }
        // dpkg knows a library by one of its names, with or without /usr (merged /usr).
        func names(_ path: String) -> [String] {
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            return [path, real, "/usr" + path, "/usr" + real]
        }
        var owners: [String: String] = [:]
        for line in try tool("/usr/bin/dpkg", ["-S"] + libraries.flatMap(names)).split(separator: "\n") {
            guard let colon = line.range(of: ": ") else { continue }
            owners[String(line[colon.upperBound...])] = String(line[..<colon.lowerBound].split(separator: ":")[0])
        }
        var missing: [String] = []
        for path in libraries {
            guard let owner = names(path).lazy.compactMap({ owners[$0] }).first else {
                missing.append("\(path) (no package owns it)")
                continue
            }
            if !available.contains(owner) { missing.append("\(path) (\(owner))") }
        }
        XCTAssertEqual(missing, [], "libraries the runtime stage of docker/Dockerfile would lack:\n\(ldd)")
        for (link, target) in try symlinkedSources() {
            XCTAssertTrue(dockerfile.contains("COPY \(target) ./\(target)\n"), "the build stage copies \(target) (\(link) links to it)")
        }
    }

    /// Folders of the package the sources link to (resources compiled in).
    func symlinkedSources() throws -> [(String, String)] {
        let sources = Self.root.appendingPathComponent("Sources")
        var links: [(String, String)] = []
        for module in try FileManager.default.contentsOfDirectory(atPath: sources.path) {
            let folder = sources.appendingPathComponent(module)
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] {
                let path = folder.appendingPathComponent(entry).path
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                    links.append(("Sources/\(module)/\(entry)", URL(fileURLWithPath: target).lastPathComponent))
                }
            }
        }
        XCTAssertFalse(links.isEmpty)
        return links
    }

    func testImagesArePinnedAndComposeHasNoDefaultAdminToken() throws {
        let dockerfile = try Self.read("docker/Dockerfile")
        let compose = try Self.read("docker/compose.yaml")
        let images = dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM ") }.map { $0.split(separator: " ")[1] }
            + compose.split(separator: "\n").compactMap { line in line.range(of: "image: ").map { line[$0.upperBound...] } }
        XCTAssertEqual(images.count, 3, "\(images)")
        for image in images {
            XCTAssertNotNil(image.range(of: #":[0-9]+\.[0-9]+"#, options: .regularExpression), "\(image) is pinned to a release")
        }
        XCTAssertTrue(compose.contains("GPUBROKER_ADMIN_TOKEN: ${GPUBROKER_ADMIN_TOKEN:?"), "compose refuses to start without a token")
        XCTAssertFalse(compose.contains("change-me"))
        let ignored = try Self.read(".dockerignore").split(separator: "\n").map(String.init)
        for path in [".build", ".gpubroker", ".git"] { XCTAssertTrue(ignored.contains(path), "\(path) stays out of the context") }
    }

    func testTheHealthcheckPassesOnAReadyBrokerOnly() async throws {
        let dockerfile = try Self.read("docker/Dockerfile")
        let instruction = try XCTUnwrap(dockerfile.range(of: #"CMD ["bash", "-c", "#))
        let json = "[" + dockerfile[dockerfile.index(instruction.lowerBound, offsetBy: 4)...].dropFirst().prefix { $0 != "]" } + "]"
        let command = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String])
        let broker = try ServedBroker()
        defer { broker.stop() }
        func check(_ port: Int) throws -> Int32 {
            let script = command[2].replacingOccurrences(of: "/8080", with: "/\(port)")
            return try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", script]).status
        }
        XCTAssertNotEqual(try check(broker.port), 0, "not healthy before it listens")
        try await broker.waitReady()
        XCTAssertEqual(try check(broker.port), 0)
    }
}
