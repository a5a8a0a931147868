import Foundation
import GRPO
import TransformerCore

/// `rlhf bench --only grpo`: the time of a GRPO iteration, phase by phase.
extension BenchCommand {
    /// The grpo rows: the seconds of each phase of one iteration and its total (`iteration_s`),
    /// per configuration; with bf16 frozen weights, the f32 iteration first, for the two side by
    /// side. The generation row also gives the decode's GFLOPS and their share of the peak:
    /// 2 flops per weight of the products per generated token (every parameter but the position
    /// embeddings: a tied embedding counts once, as the logit head), over the generation's time,
    /// prefill and sampling included. It then splits that time: the prefill (with the packing of
    /// the weights for the steps), and the decode steps with their sampling, whose GFLOPS count
    /// the same 2 flops per weight for each row each step runs.
    static func reportGRPO(_ out: BenchOutput, _ peak: PeakReference, configs: [String], loraRank: Int?, frozen: FrozenDType) throws {
        for name in configs {
            for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                let cfg = ModelConfig.preset(name)!
                let (phases, total, tokens, timing) = try benchGRPO(cfg, loraRank: loraRank, frozen: dtype)
                let tag = "grpo \(name)" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " \(dtype.rawValue)" : "")
                let common: [String: Any] = [
                    "what": "grpo", "config": label(name), "lora_rank": loraRank ?? 0, "frozen_dtype": dtype.rawValue, "prompts": 16, "group": 4,
                    "new": 48, "num_iterations": 1, "beta": 0,
                ]
                for (phase, secs) in phases {
                    var fields = common.merging(["phase": phase, "seconds": round3(secs)]) { $1 }
                    var text = "\(tag) \(phase)".column(38) + String(format: "%.3f s", secs)
                    if phase == "generation" && secs > 0 {
                        let weights = Double(
                            ParameterLayout(config: cfg, scalarHead: false).count - (cfg.architecture.isLlamaFamily ? 0 : cfg.nCtx * cfg.nEmbd))
                        let gflops = 2 * weights * tokens / secs / 1e9, share = peakShare(gflops, peak)
                        fields.merge(share.fields.merging(["gflops": round2(gflops), "generated_tokens": Int(tokens)]) { $1 }) { $1 }
                        text += ", \(Int(tokens)) tokens, \(fmt(gflops)) GFLOPS, \(share.text)"
                        let steps = timing.decodeSeconds
                        let stepGFLOPS = steps > 0 ? 2 * weights * Double(timing.decodedRows) / steps / 1e9 : 0
                        let stepShare = peakShare(stepGFLOPS, peak)
                        fields.merge([
                            "prefill_s": round3(timing.prefillSeconds), "decode_s": round3(steps), "decoded_rows": timing.decodedRows,
                            "decode_gflops": round2(stepGFLOPS), "decode_peak_share": stepShare.fields["peak_share"] ?? 0,
                        ]) { $1 }
                        text +=
                            "\n" + "  prefill".column(38) + String(format: "%.3f s (packing the weights included)", timing.prefillSeconds) + "\n"
                            + "  decode steps".column(38)
                            + String(format: "%.3f s, %d rows, ", steps, timing.decodedRows) + "\(fmt(stepGFLOPS)) GFLOPS, \(stepShare.text)"
                    }
                    out.emit(fields, text: text)
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
    /// The third value is the number of tokens generated in the reported iteration, the fourth
    /// where its generation's time went.
    static func benchGRPO(
        _ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType
    ) throws -> ([(String, Double)], Double, Double, GenerationTiming) {
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
        var best: ([(String, Double)], Double, Double, GenerationTiming) = ([], .infinity, 0, GenerationTiming())
        for _ in 0..<(policy.layout.count <= 40_000_000 ? 3 : 1) {
            let t = Date()
            let result = try trainer.step(prompts: prompts)
            let total = Date().timeIntervalSince(t)
            let tokens = (result.metric("completions/mean_length") ?? 0) * Double(s.batch * s.group)
            if total < best.1 { best = (trainer.profile, total, tokens, trainer.generationTiming) }
        }
        return best
    }
}
