import Foundation
import XCTest

@testable import RunStore
@testable import TransformerCore

/// `train-reward` and `ppo` with `--lora-rank` through the binary: adapter checkpoints registered
/// over their base (never a copy of the weights), a killed and resumed LoRA PPO run equal to an
/// uninterrupted one, and `export --adapter` writing the adapters that, merged into the base,
/// give the merged export.
final class LoRAStageCommandTests: ScratchFolderTestCase {
    func path(_ run: String) -> String { dir.appendingPathComponent(run).path }

    func store(_ run: String) throws -> RunStore { try RunStore(folder: URL(fileURLWithPath: path(run))) }

    func prepare(_ run: String, base: String = "random:S") throws {
        try rlhf(["init", "--run", path(run), "--base", base])
        let pairs = (0..<60).map { "{\"prompt\":\"question \($0)\",\"chosen\":\"thanks, glad to help\",\"rejected\":\"ugh whatever\"}" }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", path(run)])
    }

    func ppoMetrics(_ run: String) throws -> [String: Double] {
        let s = try store(run)
        let id = try s.stageRuns(stage: "ppo").first!.id
        var out: [String: Double] = [:]
        for m in try s.metrics(stageRunId: id) where !m.name.hasPrefix("time/") { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    /// Both architectures: the reward model and PPO's policy and value model are adapters over
    /// the checkpoints they adapt, small beside them, and every later command reads them.
    func testRewardAndPPOCheckpointsAreAdaptersOverTheirBase() throws {
        for base in ["random:S", "random:llama-s"] {
            let run = "arch-" + base.dropFirst(7)
            try prepare(run, base: base)
            let rm = try rlhf([
                "train-reward", "--run", path(run), "--epochs", "2", "--lora-rank", "4", "--lora-targets",
                base == "random:S" ? "c_attn,c_fc" : "q_proj,v_proj,down_proj",
            ])
            XCTAssertTrue(rm.stdout.contains("LoRA adapters over model #1"), rm.stdout)
            let s = try store(run)
            let baseRec = try s.latestModel(role: .base)!, reward = try s.latestModel(role: .reward)!
            XCTAssertEqual(reward.baseId, baseRec.id)
            let rewardDir = try s.checkpointFolder(reward), baseDir = try s.checkpointFolder(baseRec)
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: rewardDir.appendingPathComponent("model.safetensors").path), "no copy of the weights")
            func size(_ url: URL) throws -> Int { try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int }
            XCTAssertLessThan(
                try size(rewardDir.appendingPathComponent("adapter_model.safetensors")),
                try size(baseDir.appendingPathComponent("model.safetensors")) / 4)
            XCTAssertTrue(
                try rlhf([
                    "ppo", "--run", path(run), "--lora-rank", "4", "--iterations", "2", "--batch", "8", "--minibatches", "2",
                    "--response-length", "8", "--save-every", "1",
                ]).stdout.contains("PPO finished: 2 iterations"))
            let startPolicy = try s.models().first { $0.role == .policy }!
            let policy = try s.latestModel(role: .policy)!, value = try s.latestModel(role: .value)!
            XCTAssertEqual(policy.baseId, startPolicy.id, "the policy's adapters are over its starting weights")
            XCTAssertEqual(value.baseId, reward.id, "the value model's adapters are over the reward model")
            XCTAssertEqual(try s.verifiedChain(value, sha256: SHA256.hex(of:)).count, 3, "base, reward adapters, value adapters")
            // The merged reward model scores; generate samples from the LoRA policy; status checks every checkpoint.
            XCTAssertTrue(
                try rlhf(["generate", "--run", path(run), "--per-prompt", "1", "--max-new-tokens", "4", "--limit", "2"]).stdout.contains(
                    "generated 2"))
            let check = try rlhf(["status", "--run", path(run), "--check"])
            XCTAssertFalse(check.stdout.contains("problem"), check.stdout)
            // A changed base is caught through the adapters that depend on it.
            let weights = baseDir.appendingPathComponent("model.safetensors")
            let h = try FileHandle(forUpdating: weights)
            try h.seek(toOffset: UInt64(try size(weights) - 4))
            h.write(Data([1, 2, 3, 4]))
            try h.close()
            let broken = try rlhf(["generate", "--run", path(run), "--per-prompt", "2", "--max-new-tokens", "4", "--limit", "2"], expect: 1)
            XCTAssertTrue(broken.stderr.contains("has changed since it was registered"), broken.stderr)
        }
    }

    func testKilledAndResumedLoRARunMatchesAnUninterruptedOne() throws {
        try prepare("a")
        try rlhf(["train-reward", "--run", path("a"), "--epochs", "1", "--lora-rank", "4"])
        try FileManager.default.copyItem(atPath: path("a"), toPath: path("b"))
        let args = [
            "--iterations", "8", "--batch", "16", "--response-length", "24", "--save-every", "2", "--seed", "3", "--lora-rank", "8", "--lora-alpha",
            "8",
        ]
        XCTAssertTrue(try rlhf(["ppo", "--run", path("a")] + args).stdout.contains("PPO finished: 8 iterations"))

        let sb = try store("b")
        XCTAssertEqual(
            try killWhenLogged(["ppo", "--run", path("b")] + args, store: sb, metric: "objective/kl", step: 5), .uncaughtSignal,
            "the run must be killed mid-way")
        let resumed = try rlhf(["ppo", "--run", path("b"), "--resume"])
        XCTAssertTrue(resumed.stdout.contains("resuming PPO run"), resumed.stdout)
        let a = try ppoMetrics("a"), b = try ppoMetrics("b")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        XCTAssertEqual(a.count, 8 * (a.keys.filter { $0.hasSuffix("@1") }.count))
        for (k, v) in a { XCTAssertEqual(b[k] ?? .nan, v, accuracy: 1e-9 + 1e-6 * abs(v), k) }
        let sa = try store("a")
        XCTAssertEqual(try sa.latestModel(role: .policy)?.sha256, try sb.latestModel(role: .policy)?.sha256, "the same adapters")
        XCTAssertNotNil(try sb.latestModel(role: .policy)?.baseId)
        // The stored settings say LoRA.
        let config = try sb.stageRuns(stage: "ppo")[0].config
        XCTAssertTrue(config.contains("\"rank\":8"), config)

        // export --adapter: the adapters that, merged into the base, give the merged export.
        let merged = dir.appendingPathComponent("merged"), peft = dir.appendingPathComponent("peft")
        try rlhf(["export", "--run", path("a"), "-o", merged.path])
        let out = try rlhf(["export", "--run", path("a"), "--adapter", "-o", peft.path])
        XCTAssertTrue(out.stdout.contains("PeftModel.from_pretrained"), out.stdout)
        let peftConfig =
            try JSONSerialization.jsonObject(with: Data(contentsOf: peft.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(peftConfig["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(peftConfig["r"] as? Int, 8)
        let baseFolder = URL(fileURLWithPath: peftConfig["base_model_name_or_path"] as! String)
        let base = try ModelFolder.load(baseFolder)
        try PEFTAdapter.load(peft, config: base.model.config).merge(into: base.model)
        let reference = try ModelFolder.load(merged)
        let diff = zip(base.model.parameters.array, reference.model.parameters.array).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(diff, 1e-6)
        XCTAssertGreaterThan(
            zip(try ModelFolder.load(baseFolder).model.parameters.array, reference.model.parameters.array).map { abs($0 - $1) }.max()!, 1e-5,
            "PPO moved the policy")
    }

    /// `--frozen-dtype bf16`: the stages run with the frozen projections in bfloat16, store the
    /// choice, and a killed bf16 run resumes to the uninterrupted run's metrics (so resume holds
    /// the weights the same way); the f32 run of the same seed differs, so the flag is in effect.
    func testBFloat16FrozenWeightsRunAndResumeExactly() throws {
        try prepare("h")
        let rm = try rlhf(["train-reward", "--run", path("h"), "--epochs", "1", "--lora-rank", "4", "--frozen-dtype", "bf16"])
        XCTAssertTrue(rm.stdout.contains("LoRA adapters over model #1"), rm.stdout)
        XCTAssertTrue(try store("h").stageRuns(stage: "train-reward")[0].config.contains("\"frozen_dtype\":\"bf16\""))
        for copy in ["h2", "h3"] { try FileManager.default.copyItem(atPath: path("h"), toPath: path(copy)) }
        let args = ["--iterations", "6", "--batch", "16", "--response-length", "16", "--save-every", "2", "--seed", "5", "--lora-rank", "4"]
        XCTAssertTrue(try rlhf(["ppo", "--run", path("h")] + args + ["--frozen-dtype", "bf16"]).stdout.contains("PPO finished: 6 iterations"))
        XCTAssertTrue(try store("h").stageRuns(stage: "ppo")[0].config.contains("bf16"))
        XCTAssertEqual(
            try killWhenLogged(
                ["ppo", "--run", path("h2")] + args + ["--frozen-dtype", "bf16"], store: store("h2"), metric: "objective/kl", step: 3),
            .uncaughtSignal, "the run must be killed mid-way")
        XCTAssertTrue(try rlhf(["ppo", "--run", path("h2"), "--resume"]).stdout.contains("resuming PPO run"))
        let a = try ppoMetrics("h"), b = try ppoMetrics("h2")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, v) in a { XCTAssertEqual(b[k] ?? .nan, v, accuracy: 1e-9 + 1e-6 * abs(v), k) }
        try rlhf(["ppo", "--run", path("h3")] + args)
        let f32 = try ppoMetrics("h3")
        XCTAssertTrue(
            a.contains { k, v in k.hasPrefix("objective/kl@") && abs((f32[k] ?? v) - v) > 1e-7 * max(1, abs(v)) },
            "bfloat16 weights change the run")
        // Adapters are saved, not weights: the policy checkpoint exports merged in f32 as usual.
        XCTAssertTrue(
            try rlhf(["export", "--run", path("h"), "-o", dir.appendingPathComponent("hx").path]).stdout.contains("wrote the policy model"))
    }

    func testLoRAOptionErrors() throws {
        try prepare("e")
        let noRank = try rlhf(["train-reward", "--run", path("e"), "--lora-alpha", "8"], expect: 2)
        XCTAssertTrue(noRank.stderr.contains("--lora-alpha needs --lora-rank"), noRank.stderr)
        let badTarget = try rlhf(["train-reward", "--run", path("e"), "--lora-rank", "2", "--lora-targets", "q_proj"], expect: 1)
        XCTAssertTrue(badTarget.stderr.contains("c_attn"), badTarget.stderr)
        let folder = try rlhf(["train-reward", "--run", path("e"), "--lora-rank", "2", "--init", path("e") + "/checkpoints/base"], expect: 1)
        XCTAssertTrue(folder.stderr.contains("registered in the run"), folder.stderr)
        let dropout = try rlhf(["ppo", "--run", path("e"), "--lora-rank", "2", "--lora-dropout", "0.1"], expect: 2)
        XCTAssertTrue(dropout.stderr.contains("without dropout"), dropout.stderr)
        let bf16Full = try rlhf(["ppo", "--run", path("e"), "--frozen-dtype", "bf16"], expect: 2)
        XCTAssertTrue(bf16Full.stderr.contains("--frozen-dtype bf16 needs --lora-rank"), bf16Full.stderr)
        let badDType = try rlhf(["train-reward", "--run", path("e"), "--lora-rank", "2", "--frozen-dtype", "f16"], expect: 2)
        XCTAssertTrue(badDType.stderr.contains("f32 or bf16"), badDType.stderr)
        let full = try rlhf(["export", "--run", path("e"), "--adapter", "-o", path("x")], expect: 1)
        XCTAssertTrue(full.stderr.contains("without --lora-rank"), full.stderr)
        XCTAssertEqual(try store("e").stageRuns(stage: "train-reward").count, 0, "nothing started")
        let adapterAsBase = try rlhf(
            ["init", "--run", path("f"), "--base", AdapterCommandTests.fixtures.appendingPathComponent("peft/gpt2-lora").path], expect: 1)
        XCTAssertTrue(adapterAsBase.stderr.contains("holds LoRA adapters") && adapterAsBase.stderr.contains("--adapter"), adapterAsBase.stderr)
    }
}
