import Foundation

/// The tests' Python: the venv of scripts/test-venv (schemathesis, jsonschema,
/// standardwebhooks), as scripts/test names it, or the one a previous run left in `.build`.
public enum TestPython {
    public static var path: String? {
        if let given = ProcessInfo.processInfo.environment["GPUBROKER_TEST_PYTHON"] { return given }
        let local = FileManager.default.currentDirectoryPath + "/.build/contract-venv/bin/python"
        return FileManager.default.isExecutableFile(atPath: local) ? local : nil
    }
}
