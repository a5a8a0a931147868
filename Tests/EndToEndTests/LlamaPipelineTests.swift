import Foundation
import XCTest

@testable import RunStore
@testable import TransformerCore

/// The whole loop on Llama-architecture models built offline: the bf16, sharded, untied
/// `LlamaForCausalLM` that transformers saved for the parity fixtures (given a Llama-3-style chat
/// template and tokenizer_config.json, as a downloaded instruct folder has), and a base that
/// `rlhf pretrain --arch llama` trains here. init, prompts, generate, label, train-reward, ppo,
/// dpo, curves, report and export.
final class LlamaPipelineTests: ScratchFolderTestCase {
    static let arch = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TransformerCoreTests/Fixtures/hf/arch").standardizedFileURL

    func path(_ s: String) -> String { dir.appendingPathComponent(s).path }
    static let lexicon = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../labels/lexicon")
        .standardizedFileURL.path

    /// llama-tiny plus the files a downloaded Llama-3.x-Instruct folder also has.
    func instructFolder() throws -> URL {
        let out = dir.appendingPathComponent("llama-instruct")
        try FileManager.default.copyItem(at: Self.arch.appendingPathComponent("llama-tiny"), to: out)
        try FileManager.default.copyItem(at: Self.arch.appendingPathComponent("llama3.jinja"), to: out.appendingPathComponent("chat_template.jinja"))
        try #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 128}"#
            .write(to: out.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        return out
    }

    func promptsFile() throws -> String {
        let lines = (0..<12).map { "{\"prompt\": \"Tell me about topic \($0).\"}" }
        let f = dir.appendingPathComponent("prompts.jsonl")
        try lines.joined(separator: "\n").write(to: f, atomically: true, encoding: .utf8)
        return f.path
    }

    func testWholeLoopOnATransformersLlamaFolder() throws {
        let base = try instructFolder()
        let run = path("run")
        let initOut = try rlhf(["init", "--run", run, "--base", base.path])
        XCTAssertTrue(initOut.stdout.contains("llama, 2 layers"), initOut.stdout)
        XCTAssertTrue(initOut.stdout.contains("chat template"), initOut.stdout)
        try rlhf(["prompts", "add", try promptsFile(), "--run", run])
        try rlhf(["generate", "--run", run, "--per-prompt", "3", "--max-new-tokens", "10", "--seed", "1"])

        // Generation read each prompt through the model's chat template: BOS, the header tokens,
        // the date line, and the assistant's header last, exactly as the template renders it.
        let store = try RunStore(folder: URL(fileURLWithPath: run))
        let loaded = try ModelFolder.load(base)
        let prompt = try store.prompts(split: .train)[0]
        let ids = try loaded.annotations.promptIds(prompt.text, tokenizer: loaded.tokenizer)
        XCTAssertEqual(ids.first, 603)
        let header = [606] + loaded.tokenizer.encode("assistant") + [607] + loaded.tokenizer.encode("\n\n")
        XCTAssertEqual(Array(ids.suffix(header.count)), header)
        let completions = try store.completions(promptId: prompt.id)
        XCTAssertEqual(completions.count, 3)
        // Stop tokens come from generation_config.json: a completion that stopped ends in one of them.
        for c in completions where c.finishReason == "eos" { XCTAssertTrue([604, 605].contains(c.tokenIds.last!), "\(c.tokenIds)") }

        try rlhf(["label", "--simulate", "length", "--run", run])
        let rm = try rlhf(["train-reward", "--run", run, "--epochs", "2", "--lr", "1e-3"])
        XCTAssertTrue(rm.stdout.contains("accuracy"), rm.stdout)
        let ppo = try rlhf(["ppo", "--run", run, "--iterations", "2", "--batch", "4", "--minibatches", "2", "--response-length", "8", "--lr", "1e-4"])
        XCTAssertTrue(ppo.stdout.contains("PPO finished: 2 iterations"), ppo.stdout)
        XCTAssertEqual(try store.latestModel(role: .policy)?.step, 2)
        try rlhf(["dpo", "--run", run, "--epochs", "1", "--batch", "2", "--policy", "base"])
        try rlhf(["curves", "--run", run])
        try rlhf(["report", "--run", run, "-o", path("report.html")])

        // The aligned policy goes out as it came in: bf16 (the base's dtype), sharded on request,
        // Llama config, its chat template and its stop tokens.
        let out = path("export")
        let ex = try rlhf(["export", "--run", run, "--model", "policy", "-o", out, "--max-shard-size", "100KB"])
        XCTAssertTrue(ex.stdout.contains("as BF16"), ex.stdout)
        XCTAssertTrue(ex.stdout.contains("shards"), ex.stdout)
        let back = try ModelFolder.load(URL(fileURLWithPath: out))
        XCTAssertEqual(back.model.config, loaded.model.config)
        XCTAssertEqual(back.annotations.chatTemplate, loaded.annotations.chatTemplate)
        XCTAssertEqual(back.annotations.stopTokenIds, [604, 605])
        XCTAssertEqual(back.tokenizer.bosId, 603)
        let cfg = try JSONText.object(Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("config.json")), "config")
        XCTAssertEqual(cfg["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(cfg["torch_dtype"] as? String, "bfloat16")
        // The exported policy samples and scores with --chat.
        let s = try rlhf(["sample", "--model", out, "--prompt", "Hello", "--chat", "--greedy", "--json", "--max-new-tokens", "4"])
        let j = try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any]
        XCTAssertTrue((j["prompt"] as! String).hasPrefix("<|begin_of_text|><|start_header_id|>system"), s.stdout)
        try rlhf(["logprobs", "--model", out, "--text", "Hello", "--chat"])
        let tk = try rlhf(["tokenize", "--model", out, "--text", "Hello", "--chat", "--json"])
        XCTAssertTrue(tk.stdout.contains("\"<|begin_of_text|>\""), tk.stdout)
        let rendered = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(tk.stdout.utf8)) as? [String: Any])?["text"] as? String)
        XCTAssertTrue(
            rendered.hasPrefix("<|begin_of_text|><|start_header_id|>system")
                && rendered.hasSuffix("Hello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), rendered)
        XCTAssertEqual(try rlhf(["status", "--run", run, "--check"]).status, 0)
    }

    /// A Llama base trained here from a corpus, then a short loop with its prompt template (an
    /// explicit template wins over a chat template; this base has none).
    func testPretrainedLlamaBaseRunsTheLoop() throws {
        var docs: [String] = []
        for i in 0..<60 { docs.append("Q: What is \(i) plus one?\nA: It is \(i + 1). Glad to help!") }
        let corpus = dir.appendingPathComponent("corpus.txt")
        try docs.joined(separator: "\n<|endoftext|>\n").write(to: corpus, atomically: true, encoding: .utf8)
        let pre = try rlhf([
            "pretrain", "--arch", "llama", "--corpus", corpus.path, "-o", path("base"), "--steps", "30", "--batch", "4", "--vocab-size", "300",
        ])
        XCTAssertTrue(pre.stdout.contains("validation loss"), pre.stdout)
        let (cfg, notes) = try ModelFolder.readConfig(URL(fileURLWithPath: path("base")))
        XCTAssertEqual(cfg.architecture, .llama)
        XCTAssertEqual(cfg.nKVHead, 2)
        XCTAssertEqual(notes.promptTemplate, "Q: {prompt}\nA:")
        let run = path("run")
        try rlhf(["init", "--run", run, "--base", path("base")])
        try rlhf(["prompts", "add", try promptsFile(), "--run", run])
        try rlhf(["generate", "--run", run, "--per-prompt", "2", "--max-new-tokens", "8"])
        try rlhf(["label", "--simulate", "lexicon", "--lexicon", Self.lexicon, "--run", run])
        try rlhf(["train-reward", "--run", run, "--epochs", "1"])
        let ppo = try rlhf(["ppo", "--run", run, "--iterations", "1", "--batch", "4", "--minibatches", "2", "--response-length", "8"])
        XCTAssertTrue(ppo.stdout.contains("PPO finished: 1 iterations"), ppo.stdout)
    }

    func testUnsupportedModelIsRefusedWithTheField() throws {
        let folder = try instructFolder()
        var cfg = try JSONText.object(Data(contentsOf: folder.appendingPathComponent("config.json")), "config")
        cfg["model_type"] = "mistral"
        try JSONSerialization.data(withJSONObject: cfg).write(to: folder.appendingPathComponent("config.json"))
        let r = try rlhf(["init", "--run", path("x"), "--base", folder.path], expect: 1)
        XCTAssertTrue(r.stderr.contains("model_type mistral is not supported"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x") + "/run.sqlite"))
    }
}
