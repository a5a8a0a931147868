import Foundation
import XCTest

@testable import RunStore
@testable import TransformerCore

/// Handing a run to TRL or OpenRLHF through the command line: labels out and back in unchanged,
/// the exported model's chat template and provenance, and the prompt set.
final class HandOffCommandTests: ScratchFolderTestCase {
    static let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures/hf/tiny-gpt2")

    func path(_ s: String) -> String { dir.appendingPathComponent(s).path }

    /// The tiny GPT-2 with a prompt template, and a chat template of its own the run will not use.
    func templatedBase() throws -> URL {
        let out = dir.appendingPathComponent("base")
        try FileManager.default.copyItem(at: Self.hf, to: out)
        let cfgURL = out.appendingPathComponent("config.json")
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: cfgURL)) as! [String: Any]
        cfg["rlhf_prompt_template"] = "Q: {prompt}\nA:"
        try JSONSerialization.data(withJSONObject: cfg).write(to: cfgURL)
        try "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}".write(
            to: out.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        return out
    }

    func testLabelsAndModelLeaveWithTheirLayoutAndComeBackUnchanged() throws {
        let base = try templatedBase()
        let a = path("a")
        try rlhf(["init", "--run", a, "--base", base.path])
        let prompts = dir.appendingPathComponent("p.jsonl")
        try (0..<6).map { "{\"prompt\":\"Tell me about topic \($0).\"}" }.joined(separator: "\n").write(
            to: prompts, atomically: true, encoding: .utf8)
        try rlhf(["prompts", "add", prompts.path, "--run", a])
        try rlhf(["generate", "--run", a, "--per-prompt", "3", "--max-new-tokens", "6", "--seed", "3"])
        try rlhf(["label", "--run", a, "--simulate", "length"])

        let pairs = try RunStore(folder: URL(fileURLWithPath: a)).comparisons().count
        XCTAssertGreaterThan(pairs, 5)
        for format in ["trl", "trl-conversational"] {
            let first = path("a-\(format).jsonl"), again = path("b-\(format).jsonl")
            let ex = try rlhf(["labels", "export", "--run", a, "--format", format, "-o", first])
            XCTAssertTrue(ex.stdout.contains("wrote \(pairs) pairs"), ex.stdout)
            let line =
                try JSONSerialization.jsonObject(with: Data(String(contentsOfFile: first, encoding: .utf8).split(separator: "\n")[0].utf8))
                as! [String: Any]
            let meta = line["rlhf"] as! [String: Any], origin = meta["origin"] as! [String: Any]
            XCTAssertEqual(meta["format"] as? String, format)
            XCTAssertEqual(origin["run"] as? String, "a")
            XCTAssertEqual(origin["annotator"] as? String, "sim-length")
            XCTAssertTrue((origin["prompt"] as! String).hasPrefix("Tell me about topic"), "the raw prompt rides along")
            if format == "trl" {
                XCTAssertTrue((line["prompt"] as! String).hasPrefix("Q: Tell me about topic"), "the prompt as the model read it")
                XCTAssertTrue((line["prompt"] as! String).hasSuffix("\nA:"))
            } else {
                XCTAssertEqual((line["prompt"] as! [[String: String]])[0]["role"], "user")
            }
            // Into a new run and out again: the same file, byte for byte.
            let b = path("b-\(format)")
            try rlhf(["init", "--run", b, "--base", base.path])
            let imp = try rlhf(["labels", "import", first, "--run", b])
            XCTAssertTrue(imp.stdout.contains("imported \(pairs) pairs"), imp.stdout)
            try rlhf(["labels", "export", "--run", b, "--format", format, "-o", again])
            XCTAssertEqual(try String(contentsOfFile: again, encoding: .utf8), try String(contentsOfFile: first, encoding: .utf8), format)
            let store = try RunStore(folder: URL(fileURLWithPath: b))
            XCTAssertEqual(Set(try store.rankings().map(\.ranking.annotator)), ["sim-length"])
        }
        try rlhf(["labels", "export", "--run", a, "--format", "dpo"], expect: 2)

        // The model: its chat template lays prompts out as the run did; its own is kept by name.
        let out = dir.appendingPathComponent("policy")
        let ex = try rlhf(["export", "--run", a, "-o", out.path])
        XCTAssertTrue(ex.stdout.contains("the prompt template \"Q: {prompt}\\nA:\""), ex.stdout)
        let exported = try ModelFolder.load(out)
        let tok = exported.tokenizer
        XCTAssertEqual(
            try String(contentsOf: out.appendingPathComponent("additional_chat_templates/original.jinja"), encoding: .utf8),
            try String(contentsOf: base.appendingPathComponent("chat_template.jinja"), encoding: .utf8))
        for p in ["Tell me about topic 1.", "x\ny"] {
            XCTAssertEqual(
                try exported.annotations.promptIds(p, tokenizer: tok, chat: true), try exported.annotations.promptIds(p, tokenizer: tok),
                "the exported chat template gives the ids rlhf generated from")
        }
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        let prov = cfg["rlhf_provenance"] as! [String: Any]
        let store = try RunStore(folder: URL(fileURLWithPath: a))
        let policy = try store.latestModel(role: .policy)!
        XCTAssertEqual(prov["run"] as? String, "a")
        XCTAssertEqual(prov["model_id"] as? Int, Int(policy.id))
        XCTAssertEqual(prov["sha256"] as? String, policy.sha256)
        XCTAssertEqual(prov["stage"] as? String, "init")
        XCTAssertEqual(exported.annotations.provenance.map { $0.contains("\"run\":\"a\"") }, true, "read back from config.json")

        // The prompt set, for GRPO/RLOO in TRL and PPO in OpenRLHF.
        let pe = try rlhf(["prompts", "export", "--run", a, "-o", "-"])
        let lines = pe.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(lines.count, 6)
        XCTAssertEqual(lines[0]["prompt"] as? String, "Q: Tell me about topic 0.\nA:")
        XCTAssertEqual(lines[0]["input"] as? String, "Q: Tell me about topic 0.\nA:", "GPT-2 puts no token first")
        XCTAssertEqual((lines[0]["chat"] as? [[String: String]])?.first?["content"], "Tell me about topic 0.")
        XCTAssertEqual((lines[0]["rlhf"] as? [String: Any])?["split"] as? String, "train")
        try rlhf(["prompts", "export", "--run", a, "--split", "eval"], expect: 1)
        try rlhf(["prompts", "export", "--run", a, "--split", "test"], expect: 2)
    }
}
