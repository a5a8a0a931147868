import Foundation
import XCTest

/// `rlhf tokenize`, `logprobs`, `sample` and `tokenizer train` against the Hugging Face fixtures
/// of Tests/TransformerCoreTests/Fixtures/hf (made by make_hf_fixtures.py).
final class FormatCommandTests: XCTestCase {
    struct CLI { func run(_ args: [String]) throws -> CLIResult { try runCLI(args) } }
    let cli = CLI()
    static let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures/hf")
    var model: String { Self.hf.appendingPathComponent("tiny-gpt2").path }
    lazy var golden: [String: Any] = {
        let data = try! Data(contentsOf: Self.hf.appendingPathComponent("golden_hf.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    func json(_ s: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any]) ?? [:]
    }

    func testTokenizeMatchesHuggingFace() throws {
        for c in (golden["tokenizer"] as! [[String: Any]]).prefix(12) {
            let text = c["text"] as! String
            let r = try cli.run(["tokenize", "--model", model, "--text", text, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(json(r.stdout)["ids"] as? [Int], c["ids"] as? [Int], text)
            XCTAssertEqual(json(r.stdout)["text"] as? String, text)
        }
        let plain = try cli.run(["tokenize", "--model", model, "--text", "Hello world"])
        XCTAssertEqual(
            plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            ((golden["tokenizer"] as! [[String: Any]])[0]["ids"] as! [Int]).map(String.init).joined(separator: " "))
    }

    func testLogprobsEqualLogSoftmaxOfTransformersLogits() throws {
        let c = (golden["logits"] as! [[String: Any]])[0]
        let ids = c["ids"] as! [Int]
        let logits = (c["logits"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
        // The text whose first tokens these are.
        let text = (golden["tokenizer"] as! [[String: Any]])[0]["text"] as! String
        let r = try cli.run(["logprobs", "--model", model, "--text", text, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let tokens = json(r.stdout)["tokens"] as! [[String: Any]]
        XCTAssertEqual(tokens.map { $0["id"] as! Int }, Array(ids.prefix(tokens.count)))
        XCTAssertTrue(tokens[0]["logprob"] is NSNull)
        var sum = 0.0
        for t in 1..<tokens.count {
            let row = logits[t - 1]
            let m = row.max()!
            let expected = row[ids[t]] - m - log(row.reduce(0) { $0 + exp($1 - m) })
            XCTAssertEqual(tokens[t]["logprob"] as! Double, expected, accuracy: 1e-3, "token \(t)")
            sum += expected
        }
        XCTAssertEqual(json(r.stdout)["sum"] as! Double, sum, accuracy: 1e-2)
        let table = try cli.run(["logprobs", "--model", model, "--text", text])
        XCTAssertTrue(table.stdout.contains("sum of log-probabilities"))
    }

    func testGreedySampleMatchesTransformersAndSeedsReproduce() throws {
        let g = (golden["greedy"] as! [[String: Any]])[0]
        let promptIds = g["prompt_ids"] as! [Int]
        let prompt = try cli.run(["tokenize", "--model", model, "--text", "Hello world", "--json"])
        XCTAssertEqual(json(prompt.stdout)["ids"] as? [Int], promptIds)
        let r = try cli.run(["sample", "--model", model, "--prompt", "Hello world", "--greedy", "--max-new-tokens", "20", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(json(r.stdout)["ids"] as? [Int], g["continuation"] as? [Int])
        let a = try cli.run(["sample", "--model", model, "--prompt", "Hi", "--seed", "4", "--top-k", "50", "--top-p", "0.9"])
        let b = try cli.run(["sample", "--model", model, "--prompt", "Hi", "--seed", "4", "--top-k", "50", "--top-p", "0.9"])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(a.stdout, b.stdout)
        let c = try cli.run(["sample", "--model", model, "--prompt", "Hi", "--seed", "5", "--temperature", "1.5"])
        XCTAssertNotEqual(a.stdout, c.stdout)
        // Whatever the model writes, nothing but newlines and tabs below 0x20 reaches the terminal.
        for out in [a.stdout, c.stdout] {
            XCTAssertFalse(out.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }, out.debugDescription)
        }
    }

    func testTokenizerTrainWritesALoadableTokenizer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-e2e-tok-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let corpus = dir.appendingPathExtension("txt")
        try (0..<300).map { "kind answer number \($0 % 17), thanks; rude reply 😀 \($0 % 5)" }.joined(separator: "\n").write(
            to: corpus, atomically: true, encoding: .utf8)
        let r = try cli.run(["tokenizer", "train", "--corpus", corpus.path, "--vocab-size", "300", "-o", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("300-token"))
        for f in ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
        }
        let t = try cli.run(["tokenize", "--model", dir.path, "--text", "kind answer<|endoftext|>", "--json"])
        XCTAssertEqual((json(t.stdout)["ids"] as? [Int])?.last, 298, "<|endoftext|> is the first special token after the merges")
        let again = dir.appendingPathExtension("again")
        _ = try cli.run(["tokenizer", "train", "--corpus", corpus.path, "--vocab-size", "300", "-o", again.path])
        XCTAssertEqual(
            try Data(contentsOf: dir.appendingPathComponent("tokenizer.json")), try Data(contentsOf: again.appendingPathComponent("tokenizer.json")),
            "training is deterministic")
    }

    func testFormatCommandErrors() throws {
        XCTAssertEqual(try cli.run(["tokenize", "--model", model]).status, 2)
        XCTAssertEqual(try cli.run(["tokenize", "--model", model, "--text", "a", "--file", "b"]).status, 2)
        XCTAssertEqual(try cli.run(["sample", "--model", model, "--prompt", "a", "--temperature", "0"]).status, 2)
        XCTAssertEqual(try cli.run(["sample", "--model", model, "--prompt", "a", "--top-p", "1.5"]).status, 2)
        XCTAssertEqual(try cli.run(["tokenizer", "train", "--corpus", "x", "--vocab-size", "100", "-o", "y"]).status, 2)
        XCTAssertEqual(try cli.run(["tokenizer", "fit"]).status, 2)
        let missing = try cli.run(["sample", "--model", "/nonexistent/model", "--prompt", "a"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/model"), missing.stderr)
        let notModel = try cli.run(["logprobs", "--model", Self.hf.appendingPathComponent("tokenizer").path, "--text", "a"])
        XCTAssertEqual(notModel.status, 1)
        XCTAssertTrue(notModel.stderr.contains("no config.json"), notModel.stderr)
        for cmd in ["tokenize", "logprobs", "sample", "tokenizer"] {
            let h = try cli.run([cmd, "--help"])
            XCTAssertEqual(h.status, 0)
            XCTAssertTrue(h.stdout.hasPrefix("Usage: rlhf \(cmd)"), cmd)
        }
    }
}
