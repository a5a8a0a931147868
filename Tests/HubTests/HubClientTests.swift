import Foundation
import TransformerCore
import XCTest

@testable import Hub

/// `rlhf pull`'s client against the local Hub (Fixtures/local_hub.py): the cache layout, the
/// token's hosts, range resumes, verification, the Hub's refusals, timeouts, offline use and
/// concurrent pulls.
final class HubClientTests: XCTestCase {
    var hub: LocalHub!
    var cacheRoot: URL!

    override func setUpWithError() throws {
        hub = try LocalHub()
        cacheRoot = try temporaryFolder(self).appendingPathComponent("hub")
    }

    override func tearDown() { hub?.stop() }

    func client(token: String? = nil, offline: Bool = false, timeout: TimeInterval = 10, attempts: Int = 4) -> HubClient {
        let c = HubClient(environment: HubEnvironment(endpoint: hub.endpoint, cache: cacheRoot, token: token, offline: offline, timeout: timeout))
        c.showProgress = false
        c.log = { _ in }
        c.attempts = attempts
        c.retryDelay = 0.05
        return c
    }

    let repo = RepoName("tiny/llama")!
    /// The files a pull must take from the local Hub's repositories (and nothing else).
    let wanted = [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json",
        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
    ]

    func gitBlobId(_ data: Data) -> String {
        // Independent of the client: the git blob id as `git hash-object` computes it, via sha1sum.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("blob-\(UUID().uuidString)")
        try! (Data("blob \(data.count)\0".utf8) + data).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha1sum", tmp.path]
        let out = Pipe()
        p.standardOutput = out
        try! p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")[0].description
    }

    func testPullLaysOutTheCacheAsHuggingFaceHubDoes() throws {
        let pulled = try client().pull(repo)
        let listing = try hub.listing("tiny/llama")
        XCTAssertEqual(pulled.commit, listing.commit)
        let repoFolder = cacheRoot.appendingPathComponent("models--tiny--llama")
        XCTAssertEqual(pulled.folder.path, repoFolder.appendingPathComponent("snapshots/\(listing.commit)").path)
        XCTAssertEqual(try String(contentsOf: repoFolder.appendingPathComponent("refs/main"), encoding: .utf8), listing.commit)
        let entries = try FileManager.default.contentsOfDirectory(atPath: pulled.folder.path).sorted()
        XCTAssertEqual(entries, wanted.sorted())
        for name in wanted {
            let original = try Data(
                contentsOf: name == "tokenizer_config.json"
                    ? pulled.folder.appendingPathComponent(name) : LocalHub.source.appendingPathComponent(name))
            // Large files are named by their SHA-256, small ones by their git blob id, as the Hub's ETags.
            let etag = name.hasSuffix(".safetensors") ? SHA256.hex(original) : gitBlobId(original)
            let link = try FileManager.default.destinationOfSymbolicLink(atPath: pulled.folder.appendingPathComponent(name).path)
            XCTAssertEqual(link, "../../blobs/\(etag)", name)
            XCTAssertEqual(try Data(contentsOf: repoFolder.appendingPathComponent("blobs/\(etag)")), original, name)
        }
        // The lock convention: .locks/models--ORG--NAME/ETAG.lock.
        let locks = try FileManager.default.contentsOfDirectory(atPath: cacheRoot.appendingPathComponent(".locks/models--tiny--llama").path)
        XCTAssertEqual(locks.count, wanted.count)
        XCTAssertTrue(locks.allSatisfy { $0.hasSuffix(".lock") })
        // No partial file left; the folder loads as a model.
        let blobs = try FileManager.default.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("blobs").path)
        XCTAssertFalse(blobs.contains { $0.hasSuffix(".incomplete") })
        XCTAssertEqual(try ModelFolder.load(pulled.folder).model.config.nLayer, 2)

        // Only the repository's own files were asked for, and of those only what a model needs.
        let requests = try hub.requests()
        for r in requests {
            let ok =
                r.path == "/api/models/tiny/llama/revision/main?blobs=true"
                || wanted.contains { r.path == "/tiny/llama/resolve/\(listing.commit)/\($0)" } || r.path.hasPrefix("/storage/tiny/llama/")
            XCTAssertTrue(ok, "unexpected request \(r.method) \(r.path)")
            XCTAssertFalse(r.path.contains("pytorch_model.bin") || r.path.contains(".pth"), r.path)
        }
        XCTAssertEqual(requests.filter { $0.path.hasPrefix("/storage/") && $0.method == "GET" }.count, 3, "each shard fetched once")

        // A second pull fetches nothing and asks the storage for nothing.
        let again = try client().pull(repo)
        XCTAssertEqual(again.bytesFetched, 0)
        XCTAssertEqual(try hub.requests().filter { $0.path.hasPrefix("/storage/") }.count, requests.filter { $0.path.hasPrefix("/storage/") }.count)
    }

    func testTheTokenGoesOnlyToTheEndpointsHost() throws {
        _ = try client(token: LocalHub.token).pull(RepoName("tiny/gated")!)
        let requests = try hub.requests()
        let storage = requests.filter { $0.path.hasPrefix("/storage/") }
        XCTAssertEqual(Set(storage.map(\.host)), ["localhost:\(hub.port)"], "the Hub redirects the weights to another host name")
        XCTAssertEqual(storage.count, 3)
        XCTAssertTrue(storage.allSatisfy { !$0.authorization }, "the token must not follow a redirect to another host")
        let own = requests.filter { !$0.path.hasPrefix("/storage/") }
        XCTAssertFalse(own.isEmpty)
        XCTAssertTrue(own.allSatisfy { $0.authorization && $0.host == "127.0.0.1:\(hub.port)" })
    }

    func testAGatedModelWithoutATokenIsOneLineOnHowToGetAccess() throws {
        XCTAssertThrowsError(try client().pull(RepoName("tiny/gated")!)) { error in
            let m = String(describing: error)
            XCTAssertTrue(m.contains("tiny/gated is gated or private (401)"), m)
            XCTAssertTrue(m.contains("accept its licence at \(hub.endpoint.absoluteString)/tiny/gated"), m)
            XCTAssertTrue(m.contains("HF_TOKEN"), m)
            XCTAssertFalse(m.contains("\n"))
        }
        XCTAssertThrowsError(try client(token: "hf_wrong").pull(RepoName("tiny/gated")!)) { error in
            XCTAssertTrue(String(describing: error).contains("the token from the given token was refused (401)"), String(describing: error))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: cacheRoot.appendingPathComponent("models--tiny--gated/snapshots").path))
    }

    func testMissingModelsRevisionsAndFilesAre404s() throws {
        XCTAssertThrowsError(try client().pull(RepoName("tiny/nope")!)) {
            XCTAssertTrue(String(describing: $0).hasPrefix("no model tiny/nope on the Hub"), String(describing: $0))
        }
        XCTAssertThrowsError(try client().pull(repo, revision: "v9")) {
            XCTAssertEqual(String(describing: $0), "tiny/llama has no revision v9 (a branch, tag or commit); check --revision")
        }
        XCTAssertThrowsError(try client().pull(RepoName("tiny/missing")!)) {
            XCTAssertTrue(
                String(describing: $0).contains("model-00003-of-00003.safetensors of tiny/missing: not found on the Hub (404)"),
                String(describing: $0))
        }
        // The files before the missing one are in the cache; the missing one has no name there,
        // and without refs/main the model is not found as complete.
        let folder = cacheRoot.appendingPathComponent("models--tiny--missing")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("refs/main").path))
        XCTAssertNil(HubCache(root: cacheRoot).model(RepoName("tiny/missing")!, revision: "main"))
        XCTAssertThrowsError(try client().pull(repo, revision: "../../etc")) {
            XCTAssertEqual(String(describing: $0), "--revision ../../etc is not a branch, tag or commit name")
        }
    }

    func testAConnectionCutMidFileIsResumedWithARangeRequest() throws {
        let name = RepoName("tiny/cut")!
        // One attempt per pull: the first pull stops at the cut, keeping what came.
        XCTAssertThrowsError(try client(attempts: 1).pull(name)) { error in
            XCTAssertTrue(String(describing: error).contains("the next pull resumes there"), String(describing: error))
        }
        let blobs = cacheRoot.appendingPathComponent("models--tiny--cut/blobs")
        let partial = try FileManager.default.contentsOfDirectory(atPath: blobs.path).filter { $0.hasSuffix(".incomplete") }
        XCTAssertEqual(partial.count, 1)
        let kept = try FileManager.default.attributesOfItem(atPath: blobs.appendingPathComponent(partial[0]).path)[.size] as! Int
        XCTAssertGreaterThan(kept, 0)
        let shard = try hub.listing("tiny/cut").files.first { $0.sha256 == String(partial[0].dropLast(".incomplete".count)) }!
        XCTAssertEqual(kept, shard.size! / 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: blobs.appendingPathComponent(shard.sha256!).path), "no partial file under a final name")
        XCTAssertFalse(
            FileManager.default.fileExists(
                atPath: cacheRoot.appendingPathComponent("models--tiny--cut/snapshots/\(try hub.listing("tiny/cut").commit)/\(shard.path)").path))

        // The next pull continues from the kept bytes; the other shards are cut once each too and
        // resumed within the pull.
        let pulled = try client(attempts: 2).pull(name)
        let ranges = try hub.requests().filter { $0.path.hasPrefix("/storage/") && $0.range != nil }
        XCTAssertTrue(ranges.contains { $0.range == "bytes=\(kept)-" && $0.path.hasSuffix(shard.sha256!) }, "\(ranges)")
        XCTAssertEqual(ranges.count, 3)
        for f in ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"] {
            XCTAssertEqual(
                try Data(contentsOf: pulled.folder.appendingPathComponent(f)), try Data(contentsOf: LocalHub.source.appendingPathComponent(f)), f)
        }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: blobs.path).allSatisfy { !$0.hasSuffix(".incomplete") })
    }

    func testBytesThatDoNotMatchThePublishedSHA256AreDeletedAndReported() throws {
        let name = RepoName("tiny/corrupt")!
        let listing = try hub.listing("tiny/corrupt")
        let bad = listing.files.first { $0.path == "model-00002-of-00003.safetensors" }!
        XCTAssertThrowsError(try client().pull(name)) { error in
            let m = String(describing: error)
            XCTAssertTrue(m.hasPrefix("model-00002-of-00003.safetensors: the downloaded bytes have SHA-256 "), m)
            XCTAssertTrue(m.contains("but the Hub published \(bad.sha256!); the file was deleted"), m)
        }
        let blobs = cacheRoot.appendingPathComponent("models--tiny--corrupt/blobs")
        XCTAssertFalse(FileManager.default.fileExists(atPath: blobs.appendingPathComponent(bad.sha256!).path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: blobs.appendingPathComponent(bad.sha256! + ".incomplete").path))
        XCTAssertFalse(
            FileManager.default.fileExists(
                atPath: cacheRoot.appendingPathComponent("models--tiny--corrupt/snapshots/\(listing.commit)/\(bad.path)").path))
    }

    func testASlowServerTimesOut() throws {
        let start = Date()
        XCTAssertThrowsError(try client(timeout: 1, attempts: 2).pull(RepoName("tiny/slow")!)) { error in
            let m = String(describing: error)
            XCTAssertTrue(m.contains("sent nothing for 1 seconds (HF_HUB_DOWNLOAD_TIMEOUT)"), m)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "the idle timeout, not the server's 30 s stall, ends the pull")
        let blobs = cacheRoot.appendingPathComponent("models--tiny--slow/blobs")
        let names = try FileManager.default.contentsOfDirectory(atPath: blobs.path)
        XCTAssertFalse(names.contains { RepoListing.isSHA256($0) }, "no weights under a final name: \(names)")
    }

    func testOfflineModeResolvesFromTheCacheWithNoServer() throws {
        XCTAssertThrowsError(try client(offline: true).pull(repo)) { error in
            XCTAssertTrue(String(describing: error).hasPrefix("HF_HUB_OFFLINE is set and the cache ("), String(describing: error))
        }
        let pulled = try client().pull(repo)
        hub.stop()
        let offline = try client(offline: true).pull(repo)
        XCTAssertEqual(offline.folder, pulled.folder)
        XCTAssertEqual(offline.commit, pulled.commit)
        XCTAssertEqual(offline.bytesFetched, 0)
        // The locator finds it in the cache first, without the network, even when not offline.
        var notes: [String] = []
        let env = HubEnvironment(endpoint: URL(string: "http://127.0.0.1:9")!, cache: cacheRoot)
        let (folder, hubModel) = try ModelLocator.locate("tiny/llama", environment: env, log: { notes.append($0) })
        XCTAssertEqual(folder, pulled.folder)
        XCTAssertEqual(hubModel?.commit, pulled.commit)
        XCTAssertTrue(notes.first?.contains("from the Hugging Face cache") ?? false, "\(notes)")
        // A revision that is the commit itself needs no ref to be found.
        XCTAssertEqual(try client(offline: true).pull(repo, revision: pulled.commit).folder, pulled.folder)
        XCTAssertThrowsError(try client(offline: true).pull(repo, revision: "v2"))
    }

    func testConcurrentPullsOfOneModelMakeOneCorrectCache() throws {
        // tiny/throttled pauses halfway through each shard, so the pulls overlap.
        let group = DispatchGroup()
        let results = Locked([Result<PulledModel, Error>]())
        let notes = Locked([String]())
        for _ in 0..<3 {
            let c = client()
            c.log = { line in notes.withLock { $0.append(line) } }
            DispatchQueue.global().async(group: group) {
                let r = Result { try c.pull(RepoName("tiny/throttled")!) }
                results.withLock { $0.append(r) }
            }
        }
        group.wait()
        let all = try results.withLock { try $0.map { try $0.get() } }
        XCTAssertEqual(Set(all.map(\.folder)).count, 1)
        let folder = all[0].folder
        for name in wanted where name != "tokenizer_config.json" {
            XCTAssertEqual(
                try Data(contentsOf: folder.appendingPathComponent(name)), try Data(contentsOf: LocalHub.source.appendingPathComponent(name)), name)
        }
        let blobs = try FileManager.default.contentsOfDirectory(atPath: cacheRoot.appendingPathComponent("models--tiny--throttled/blobs").path)
        XCTAssertEqual(blobs.count, wanted.count, "\(blobs)")
        // Each shard came over the network once: the others waited on its lock and found it there.
        XCTAssertEqual(try hub.requests().filter { $0.path.hasPrefix("/storage/") && $0.method == "GET" }.count, 3)
        XCTAssertTrue(notes.withLock { $0.contains { $0.contains("another download of it is under way; waiting for it") } }, "the pulls overlapped")
    }

    func testARenamedRepositorysRedirectsAreFollowedOnTheHubsHost() throws {
        let pulled = try client(token: LocalHub.token).pull(RepoName("tiny/old-name")!)
        let requests = try hub.requests() // before the test's own (token-less) listing below
        // Cached under the name asked for, as the Python client does, with the new name's files.
        XCTAssertEqual(pulled.folder.deletingLastPathComponent().deletingLastPathComponent().lastPathComponent, "models--tiny--old-name")
        XCTAssertEqual(pulled.commit, try hub.listing("tiny/llama").commit)
        XCTAssertEqual(
            try Data(contentsOf: pulled.folder.appendingPathComponent("model-00001-of-00003.safetensors")),
            try Data(contentsOf: LocalHub.source.appendingPathComponent("model-00001-of-00003.safetensors")))
        XCTAssertTrue(requests.contains { $0.path.hasPrefix("/api/models/tiny/old-name/") })
        XCTAssertTrue(requests.filter { !$0.path.hasPrefix("/storage/") }.allSatisfy(\.authorization))
        XCTAssertTrue(requests.filter { $0.path.hasPrefix("/storage/") }.allSatisfy { !$0.authorization })
    }

    func testAPlainFolderIsWrittenWithTheFilesThemselves() throws {
        let out = try temporaryFolder(self).appendingPathComponent("smol")
        let pulled = try client().pull(repo, output: out)
        XCTAssertEqual(pulled.folder, out)
        for name in wanted {
            let attrs = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(name).path)
            XCTAssertEqual(attrs[.type] as? FileAttributeType, .typeRegular, name)
        }
        XCTAssertEqual(
            try Data(contentsOf: out.appendingPathComponent("model-00002-of-00003.safetensors")),
            try Data(contentsOf: LocalHub.source.appendingPathComponent("model-00002-of-00003.safetensors")))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: out.deletingLastPathComponent().path), ["smol"], "no temporary folder left")
        _ = try ModelFolder.load(out)
    }
}
