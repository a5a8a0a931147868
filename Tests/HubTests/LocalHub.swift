import Foundation
import XCTest

@testable import Hub

/// The local stand-in for the Hub (Fixtures/local_hub.py, Python's standard library only),
/// started on 127.0.0.1 at a free port for one test and stopped after it.
final class LocalHub {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// The model folder every repository of the local Hub serves (sharded weights, a Llama 3 style tokenizer).
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures/hf/arch/llama-tiny")
    /// The token tiny/gated accepts.
    static let token = "hf_test_token"

    let process = Process()
    let port: Int
    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.fixtures.appendingPathComponent("local_hub.py").path, Self.source.path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        // The first line is "port N".
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line.append(d)
        }
        guard let text = String(data: line, encoding: .utf8), text.hasPrefix("port "),
            let p = Int(text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            process.terminate()
            throw HubError("the local Hub did not start (python3 \(Self.fixtures.path)/local_hub.py)")
        }
        port = p
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    /// One request the local Hub received.
    struct Request: Decodable {
        let method: String
        let host: String
        let path: String
        let authorization: Bool
        let range: String?
    }

    /// Every request so far (not counting this one).
    func requests() throws -> [Request] {
        var body = Data()
        _ = try HTTPClient(timeout: 10).send("GET", endpoint.appendingPathComponent("_log"), headers: [:]) { _, d in body.append(d) }
        return try JSONDecoder().decode([Request].self, from: body).filter { $0.path != "/_log" }
    }

    /// The listing the local Hub gives of a repository.
    func listing(_ repo: String) throws -> RepoListing {
        var body = Data()
        _ = try HTTPClient(timeout: 10).send(
            "GET", URL(string: "\(endpoint.absoluteString)/api/models/\(repo)/revision/main?blobs=true")!, headers: [:]
        ) {
            _, d in body.append(d)
        }
        return try RepoListing.parse(body, what: repo)
    }
}

/// A fresh temporary folder, removed at the end of the test.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("hubtests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}
