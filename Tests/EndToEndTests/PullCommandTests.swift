import Foundation
import RunStore
import XCTest

/// `rlhf pull` and Hub names for `--model`/`--base`, against the local Hub of
/// Tests/HubTests/Fixtures/local_hub.py (Python's standard library), with the cache in the
/// scratch folder: pull, offline use of the cache, the run's recorded origin, the model card, the
/// BOS of a Llama 3 tokenizer against transformers, the Hub's refusals, and two pulls at once.
final class PullCommandTests: ScratchFolderTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("HubTests/Fixtures")
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures/hf/arch/llama-tiny")
    var server: Process?
    var port = 0

    override func setUp() {
        super.setUp()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.fixtures.appendingPathComponent("local_hub.py").path, Self.source.path]
        let out = Pipe()
        p.standardOutput = out
        try! p.run()
        server = p
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        port = Int(line.dropFirst("port ".count).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        XCTAssertGreaterThan(port, 0, "the local Hub did not start: \(line)")
    }

    override func tearDown() {
        stopServer()
        super.tearDown()
    }

    func stopServer() {
        if let s = server, s.isRunning { s.terminate(); s.waitUntilExit() }
    }

    var cache: URL { dir.appendingPathComponent("hf-cache") }
    var env: [String: String] {
        [
            "HF_ENDPOINT": "http://127.0.0.1:\(port)", "HF_HUB_CACHE": cache.path, "HF_TOKEN": "",
            "HF_HOME": dir.appendingPathComponent("hf-home").path,
        ]
    }

    func json(_ s: String) throws -> [String: Any] { try JSONSerialization.jsonObject(with: Data(s.utf8)) as! [String: Any] }

    func testPullThenUseTheModelByNameOfflineInitStatusAndExport() throws {
        let pulled = try rlhf(["pull", "tiny/llama", "-o", "plain"], env: env)
        let snapshot = pulled.stderr.components(separatedBy: "commit ")[1].prefix(40)
        XCTAssertEqual(pulled.stdout, dir.appendingPathComponent("plain").path + "\n")
        XCTAssertTrue(pulled.stderr.contains("model-00002-of-00003.safetensors 95.7 kB (SHA-256 verified)"), pulled.stderr)
        XCTAssertTrue(pulled.stderr.contains("pull tiny/llama "), pulled.stderr)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: cache.appendingPathComponent("models--tiny--llama/snapshots/\(snapshot)/config.json").path))
        XCTAssertEqual(
            try Data(contentsOf: dir.appendingPathComponent("plain/model-00001-of-00003.safetensors")),
            try Data(contentsOf: Self.source.appendingPathComponent("model-00001-of-00003.safetensors")))
        stopServer()

        // With no server and HF_HUB_OFFLINE=1, the name is found in the cache.
        var offline = env
        offline["HF_HUB_OFFLINE"] = "1"
        let reference = try json(String(decoding: try Data(contentsOf: Self.fixtures.appendingPathComponent("bos_reference.json")), as: UTF8.self))
        for c in reference["cases"] as! [[String: Any]] {
            let text = c["text"] as! String
            let withBOS = try rlhf(["tokenize", "--model", "tiny/llama", "--text", text, "--json"], env: offline)
            XCTAssertEqual(try json(withBOS.stdout)["ids"] as? [Int], c["ids_default"] as? [Int], "tokenizer(text) in transformers: \(text)")
            let bare = try rlhf(["tokenize", "--model", "tiny/llama", "--text", text, "--no-special-tokens", "--json"], env: offline)
            XCTAssertEqual(try json(bare.stdout)["ids"] as? [Int], c["ids_bare"] as? [Int], "add_special_tokens=False: \(text)")
        }
        let lp = try rlhf(["logprobs", "--model", "tiny/llama", "--text", "Hello world", "--json"], env: offline)
        let tokens = try json(lp.stdout)["tokens"] as! [[String: Any]]
        XCTAssertEqual(tokens.map { $0["id"] as! Int }, [603, 396, 265, 535], "scored after <|begin_of_text|>, as tokenizer(text) gives it")
        XCTAssertTrue(tokens[1]["logprob"] is Double, "the text's first token is scored given the BOS")
        let bareLp = try rlhf(["logprobs", "--model", "tiny/llama", "--text", "Hello world", "--json", "--no-special-tokens"], env: offline)
        XCTAssertEqual((try json(bareLp.stdout)["tokens"] as! [[String: Any]]).map { $0["id"] as! Int }, [396, 265, 535])
        try rlhf(["sample", "--model", "tiny/llama", "--prompt", "Hi", "--max-new-tokens", "2", "--greedy"], env: offline)

        // A run from the name records the repository and the commit.
        let created = try rlhf(["init", "--run", "r", "--base", "tiny/llama"], env: offline)
        XCTAssertTrue(created.stdout.contains("from the Hugging Face Hub: tiny/llama at commit \(snapshot) (revision main)"), created.stdout)
        let store = try RunStore(folder: dir.appendingPathComponent("runs/r"))
        let base = try XCTUnwrap(try store.latestModel(role: .base))
        XCTAssertEqual(try store.modelOrigin(id: base.id), ModelOrigin(repo: "tiny/llama", revision: "main", commit: String(snapshot)))
        let status = try rlhf(["status", "--run", "r"])
        XCTAssertTrue(status.stdout.contains("  base model   tiny/llama at commit \(snapshot) (revision main)"), status.stdout)
        let statusJSON = try json(try rlhf(["status", "--run", "r", "--json"]).stdout)
        XCTAssertEqual(statusJSON["base_origin"] as? [String: String], ["repo": "tiny/llama", "revision": "main", "commit": String(snapshot)])

        // The exported folder carries a model card the Hub reads.
        try rlhf(["export", "--run", "r", "-o", "out"])
        let card = try String(contentsOf: dir.appendingPathComponent("out/README.md"), encoding: .utf8)
        XCTAssertTrue(
            card.hasPrefix("---\nbase_model: tiny/llama\nlibrary_name: transformers\ntags:\n- rlhf\npipeline_tag: text-generation\n---\n"), card)
        XCTAssertTrue(card.contains("[tiny/llama](https://huggingface.co/tiny/llama) at commit `\(snapshot)`"), card)
        // A policy a stage made: its tags, its method line and its stage's last metrics, with
        // user-given names escaped. (Registered by hand over the base checkpoint: the card is
        // what is tested here, not the stage.)
        let ppo = try store.beginStageRun(stage: "ppo", config: "{}", seed: 0)
        try store.logMetrics(stageRunId: ppo, step: 1, [("objective/kl", 0.5), ("objective/scores", 1.0)])
        try store.logMetrics(stageRunId: ppo, step: 2, [("objective/kl", 0.25), ("<b>odd|name`", 3)])
        try store.finishStageRun(ppo, status: .succeeded)
        let policy = try XCTUnwrap(try store.latestModel(role: .policy))
        try store.registerModel(
            role: .policy, path: policy.path, sha256: policy.sha256, config: policy.config, promptTemplate: nil, parentId: policy.id,
            stageRunId: ppo, step: 2)
        try rlhf(["export", "--run", "r", "-o", "aligned"])
        let aligned = try String(contentsOf: dir.appendingPathComponent("aligned/README.md"), encoding: .utf8)
        XCTAssertTrue(
            aligned.hasPrefix("---\nbase_model: tiny/llama\nlibrary_name: transformers\ntags:\n- rlhf\n- ppo\npipeline_tag: text-generation\n---\n"),
            aligned)
        XCTAssertTrue(aligned.contains("- `ppo` (stage run #\(ppo), step 2): PPO against the reward model"), aligned)
        XCTAssertTrue(aligned.contains("| `objective/kl` | 2 | 0.25 |"), aligned)
        XCTAssertTrue(aligned.contains("| `objective/scores` | 1 | 1 |"), aligned)
        XCTAssertTrue(aligned.contains("| `&lt;b&gt;odd name ` | 2 | 3 |"), aligned)
        XCTAssertFalse(aligned.contains("<b>"))
        try rlhf(["export", "--run", "r", "-o", "bare", "--no-model-card"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bare/README.md").path))

        // A local folder of a Hub name's shape is a folder: the rule never mixes the two.
        let local = try rlhf(["tokenize", "--model", "./tiny/llama", "--text", "a"], env: offline, expect: 1)
        XCTAssertTrue(local.stderr.contains("tiny/llama"), local.stderr)
        // Offline and not in the cache: one line naming the cache.
        let missing = try rlhf(["tokenize", "--model", "tiny/other", "--text", "a"], env: offline, expect: 1)
        XCTAssertTrue(
            missing.stderr.hasPrefix("rlhf tokenize: error: tiny/other is not in the Hugging Face cache (\(cache.path)) and HF_HUB_OFFLINE is set"),
            missing.stderr)
    }

    func testTheHubsRefusalsAreOneLineAndLeaveNothingUnderAFinalName() throws {
        let gated = try rlhf(["pull", "tiny/gated"], env: env, expect: 1)
        XCTAssertTrue(
            gated.stderr.hasPrefix(
                "rlhf pull: error: tiny/gated is gated or private (401): accept its licence at http://127.0.0.1:\(port)/tiny/gated"), gated.stderr)
        XCTAssertEqual(gated.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1)
        var withToken = env
        withToken["HF_TOKEN"] = "hf_test_token"
        try rlhf(["pull", "tiny/gated"], env: withToken)
        // The token may also come from the file `hf auth login` writes.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("hf-home"), withIntermediateDirectories: true)
        try Data("hf_test_token\n".utf8).write(to: dir.appendingPathComponent("hf-home/token"))
        try rlhf(["pull", "tiny/gated", "-o", "gated-copy"], env: env)

        let corrupt = try rlhf(["pull", "tiny/corrupt"], env: env, expect: 1)
        XCTAssertTrue(corrupt.stderr.contains("the downloaded bytes have SHA-256"), corrupt.stderr)
        let missing = try rlhf(["pull", "tiny/nope"], env: env, expect: 1)
        XCTAssertTrue(missing.stderr.hasPrefix("rlhf pull: error: no model tiny/nope on the Hub"), missing.stderr)
        let typo = try rlhf(["sample", "--model", "tiny/nope", "--prompt", "a"], env: env, expect: 1)
        XCTAssertTrue(typo.stderr.hasSuffix("; nor is there a local folder tiny/nope\n"), typo.stderr)
        let usage = try rlhf(["pull", "gpt2"], env: env, expect: 2)
        XCTAssertTrue(usage.stderr.contains("is not a Hub model name"), usage.stderr)
        try rlhf(["pull"], env: env, expect: 2)
        // Whatever failed, every file under a final name in the cache is complete: blobs are named
        // by their content, and the partial ones end in .incomplete.
        let enumerator = FileManager.default.enumerator(atPath: cache.path)!
        for case let path as String in enumerator where path.contains("/blobs/") && !path.hasSuffix(".incomplete") {
            let name = (path as NSString).lastPathComponent
            if name.count == 64 {
                XCTAssertEqual(try sha256(cache.appendingPathComponent(path)), name, path)
            }
        }
    }

    func sha256(_ url: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum", url.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return String(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64))
    }

    func testTwoPullsAtOnceMakeOneCorrectCache() throws {
        // tiny/throttled pauses halfway through each shard, so the two processes overlap.
        let lock = NSLock()
        var results: [CLIResult] = []
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            let r = try! runCLI(["pull", "tiny/throttled"], env: self.env, cwd: self.dir)
            lock.lock()
            results.append(r)
            lock.unlock()
        }
        for r in results { XCTAssertEqual(r.status, 0, r.stderr) }
        XCTAssertEqual(results[0].stdout, results[1].stdout)
        let folder = URL(fileURLWithPath: results[0].stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        for f in ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "config.json"] {
            XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent(f)), try Data(contentsOf: Self.source.appendingPathComponent(f)), f)
        }
        let blobs = try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("models--tiny--throttled/blobs").path)
        XCTAssertEqual(blobs.count, 8, "one blob per file, no partial file: \(blobs)")
        XCTAssertTrue(results.contains { $0.stderr.contains("another download of it is under way; waiting for it") }, "the pulls overlapped")
    }
}
