import ArgumentParser
import BrokerAPI
import BrokerClient
import BrokerCore
import Crypto
import Foundation
import JSON

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Allocate for a Kubernetes manifest file and write the manifests to apply per region.",
        discussion: """
            POST /v1/allocations/from-manifest with the file (a YAML stream or JSON). Without -o \
            the manifests to apply, the workloads' copies with the region injected into labels, \
            selector and nodeSelector, go to stdout as YAML documents (ready for \
            'kubectl apply -f -') and a summary line to stderr; with --output-dir each is \
            written to DIR/<name>.yaml (a document returned once per region unrenamed: \
            DIR/<name>-<region>.yaml) and the allocation is printed. -o json or -o yaml prints \
            the whole answer (allocations and manifests). A ResourcePolicy, PropagationPolicy \
            or ctyun Policy in the file places the workloads it selects; a file holding only \
            such policies stores each as the tenant's named policy (PUT /v1/policies/NAME), \
            which later requests whose labels match then use. Applying the same file again \
            gives the same allocations (within 24 hours); --again asks for new ones. \
            --dry-run shows what the file would be granted and changes nothing.
            """)

    @Option(name: .customShort("f"), help: ArgumentHelp("The manifest file, or - for stdin.", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("Write the per-region manifests into this directory.", valueName: "dir"))
    var outputDir: String?

    @Flag(help: "Allocate again for a file applied before (by default the same file gives the same allocation).")
    var again = false

    @OptionGroup var dryRun: DryRunOption
    @OptionGroup var options: ClientOptions

    /// The request's `Idempotency-Key`: the file's SHA-256, so that applying a file twice is
    /// one set of allocations (the broker answers the first grant again, for 24 hours, per
    /// tenant); with `--again`, a fresh one.
    static func idempotencyKey(_ bytes: [UInt8], again: Bool) -> String {
        guard !again else { return UUID().uuidString }
        return "apply-" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    func run() async throws {
        let bytes = try readInput(file)
        if let policies = Self.policiesOnly(bytes) {
            try await options.run { client, printer in
                var stored: [JSONValue] = []
                for policy in policies {
                    stored.append(try await client.putPolicy(policy["metadata"]?["name"]?.stringValue ?? "", policy))
                }
                try printer.print(.array(stored)) { _ in
                    zip(policies, stored).map { policy, saved in
                        "stored \(policy["kind"]?.stringValue ?? "") as policy \(saved.text("name"))\n"
                            + (saved["warnings"]?.arrayValue ?? []).map { "warning: \($0.stringValue ?? "")\n" }.joined()
                    }.joined()
                }
            }
            return
        }
        if dryRun.dryRun {
            return try await options.run { client, printer in
                try DryRunOption.show(try await client.allocate(manifest: bytes, dryRun: true), printer: printer)
            }
        }
        try await options.run { client, printer in
            let answer = try await client.allocate(manifest: bytes, idempotencyKey: Self.idempotencyKey(bytes, again: again))
            let allocation = answer["allocation"] ?? .null
            let manifests = answer["manifests"]?.arrayValue ?? []
            let regions = answer["manifestRegions"]?.arrayValue ?? []
            if let outputDir {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
                var used: Set<String> = []
                for (index, manifest) in manifests.enumerated() {
                    var name = manifest["metadata"]?["name"]?.stringValue ?? "manifest-\(index + 1)"
                    if index < regions.count, let region = regions[index].stringValue, !name.hasSuffix("-\(region)") {
                        name += "-\(region)"
                    }
                    if used.contains(name), let kind = manifest["kind"]?.stringValue { name = "\(kind.lowercased())-\(name)" }
                    used.insert(name)
                    let path = (outputDir as NSString).appendingPathComponent(Self.fileName(name))
                    try Data(try YAMLBodies.text(manifest).utf8).write(to: URL(fileURLWithPath: path))
                    Terminal.write("wrote \(path)\n", to: .standardError)
                }
            }
            switch options.output {
            case .json?, .yaml?:
                try printer.print(answer) { _ in "" }
            case .table?:
                try printer.print(allocation) { Tables.allocation($0, colour: printer.colour) }
            case nil where outputDir != nil:
                try printer.print(allocation) { Tables.allocation($0, colour: printer.colour) }
            case nil:
                let documents = try manifests.map { try YAMLBodies.text($0) }
                Terminal.write(documents.map { "---\n" + $0 }.joined(), to: .standardOutput)
                Terminal.write(
                    "allocation \(allocation.text("id")) \(allocation.text("status")): \(Tables.placed(allocation)) replicas "
                        + "(\(Tables.runningRegions(allocation)))\n", to: .standardError)
            }
        }
    }

    /// The documents of a file holding policy objects and nothing else (`List`s aside); nil
    /// otherwise, and for a file that does not parse: the server then says why.
    static func policiesOnly(_ bytes: [UInt8]) -> [JSONValue]? {
        let first = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        let documents = first == UInt8(ascii: "{") ? (try? JSONValue.parse(bytes)).map { [$0] } : try? YAMLBodies.parseStream(bytes).0
        guard let documents, !documents.isEmpty, documents.allSatisfy(ManifestPolicies.isPolicy) else { return nil }
        return documents
    }

    /// A manifest name as a file name: what is not a letter, digit, '.', '-' or '_' becomes '_'.
    static func fileName(_ name: String) -> String {
        let safe = String(name.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
        return (safe.isEmpty || safe.hasPrefix(".") ? "manifest" + safe : safe) + ".yaml"
    }
}
