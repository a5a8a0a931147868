import Foundation
import GRPO
import TransformerCore

/// `rlhf bench --only grpo`: the time of a GRPO iteration, phase by phase.
extension BenchCommand {
    /// The grpo rows: the seconds of each phase of one iteration and its total (`iteration_s`),
    /// per configuration; with bf16 frozen weights, the f32 iteration first, for the two side by
    /// side.
    static func reportGRPO(_ out: BenchOutput, configs: [String], loraRank: Int?, frozen: FrozenDType) throws {
        for name in configs {
            for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                let (phases, total) = try benchGRPO(ModelConfig.preset(name)!, loraRank: loraRank, frozen: dtype)
                let tag = "grpo \(name)" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " \(dtype.rawValue)" : "")
                let common: [String: Any] = [
                    "what": "grpo", "config": label(name), "lora_rank": loraRank ?? 0, "frozen_dtype": dtype.rawValue, "prompts": 16, "group": 4,
                    "new": 48, "num_iterations": 1, "beta": 0,
                ]
                for (phase, secs) in phases {
                    out.emit(
                        common.merging(["phase": phase, "seconds": round3(secs)]) { $1 },
                        text: "\(tag) \(phase)".column(38) + String(format: "%.3f s", secs))
                }
                out.emit(
                    common.merging(["phase": "total", "seconds": round3(total), "iteration_s": round3(total)]) { $1 },
                    text: "\(tag) iteration total".column(38) + String(format: "%.3f s", total))
            }
        }
    }

    /// One GRPO iteration after a warm-up, in the setting of TRL's measured `GRPOTrainer` step:
    /// 16 random prompts of 8–24 tokens × a group of 4 × 48 new tokens, μ = 1, β = 0 (no
    /// reference pass), rewarded by a reward model of the policy's shape; fully fine-tuned, or
    /// with rank-r LoRA on every projection (α = 2r). (phase, seconds) and the total: the best of
    /// three timed iterations for models up to M's size, one for larger ones.
    static func benchGRPO(_ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType) throws -> ([(String, Double)], Double) {
        let policy = TransformerModel(config: cfg), reward = TransformerModel(config: cfg, scalarHead: true)
        policy.initialize(seed: 1)
        reward.copyParameters(from: policy)
        if let r = loraRank {
            let lc = LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture))
            policy.lora = try LoRAAdapters(config: lc, model: cfg, seed: 2)
            if frozen == .bf16 { policy.holdProjectionsInBFloat16(); reward.holdProjectionsInBFloat16() }
        }
        var s = GRPOConfig()
        s.batch = 16; s.group = 4; s.responseLength = 48; s.numIterations = 1; s.beta = 0; s.iterations = 4
        var rng = SeededRandom(seed: 7)
        let prompts = (0..<s.batch).map { _ in (0..<(8 + rng.int(below: 17))).map { _ in Int32(2 + rng.int(below: cfg.vocabSize - 2)) } }
        let rm = ScalarHeadRunner(model: reward, rows: 16)
        let trainer = GRPOTrainer(policy: policy, reference: nil, stopTokens: [0], pad: 1, settings: s) { rows, responses, _ in
            RewardBreakdown(terms: [("rm", 1, rm.scores(zip(rows, responses).map { prompts[$0] + $1 }).map(Double.init))])
        }
        _ = try trainer.step(prompts: prompts)
        var best: ([(String, Double)], Double) = ([], .infinity)
        for _ in 0..<(policy.layout.count <= 40_000_000 ? 3 : 1) {
            let t = Date()
            _ = try trainer.step(prompts: prompts)
            let total = Date().timeIntervalSince(t)
            if total < best.1 { best = (trainer.profile, total) }
        }
        return best
    }
}
