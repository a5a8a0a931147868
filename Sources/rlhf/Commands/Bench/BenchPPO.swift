import Foundation
import PPO
import TransformerCore

/// `rlhf bench --only ppo` and `--only ppo-memory`: the time and the memory of a PPO iteration.
extension BenchCommand {
    /// The ppo-memory rows of configuration `config`: the bytes of each kind of live tensor,
    /// their total and the process's resident memory.
    static func reportPPOMemory(_ out: BenchOutput, config: String, loraRank: Int?, frozen: FrozenDType) throws {
        let tag = "ppo \(config)" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " bf16" : "") + precisionTag
        for (name, bytes) in try benchPPOMemory(ModelConfig.preset(config)!, loraRank: loraRank, frozen: frozen) {
            var fields: [String: Any] = [
                "what": "ppo-memory", "config": label(config), "part": name, "mb": round2(Double(bytes) / 1_048_576),
                "frozen_dtype": frozen.rawValue,
            ]
            if let r = loraRank { fields["lora_rank"] = r }
            out.emit(fields, text: "\(tag)  \(name)".column(78) + "\(fmt(Double(bytes) / 1_048_576)) MiB")
        }
    }

    /// The ppo rows: the seconds of each phase of one iteration and its total, per configuration.
    static func reportPPO(_ out: BenchOutput, configs: [String], loraRank: Int?, frozen: FrozenDType) throws {
        // With bf16 frozen weights, the f32 iteration first, for the two side by side.
        for name in configs {
            for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                let (phases, total) = try benchPPO(ModelConfig.preset(name)!, loraRank: loraRank, frozen: dtype)
                let tag = "ppo \(name)" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " \(dtype.rawValue)" : "") + precisionTag
                for (phase, secs) in phases {
                    out.emit(
                        [
                            "what": "ppo", "config": name, "phase": phase, "seconds": round3(secs), "lora_rank": loraRank ?? 0,
                            "frozen_dtype": dtype.rawValue,
                        ],
                        text: "\(tag) \(phase)".column(38) + String(format: "%.3f s", secs))
                }
                out.emit(
                    [
                        "what": "ppo", "config": name, "phase": "total", "seconds": round3(total), "lora_rank": loraRank ?? 0,
                        "frozen_dtype": dtype.rawValue,
                    ],
                    text: "\(tag) iteration total".column(38) + String(format: "%.3f s", total))
            }
        }
    }

    /// PPO's four models with random weights: without LoRA, four of them (the reference a copy
    /// of the policy, the value model of the reward model); with rank-r LoRA, two sets of
    /// weights, the policy's shared by the reference and the reward model's by the value model,
    /// with adapters (α = 2r, every projection) on the policy and the value model.
    static func ppoModels(_ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType = .f32) throws -> (
        policy: TransformerModel, reference: TransformerModel, value: TransformerModel, reward: TransformerModel
    ) {
        let policy = TransformerModel(config: cfg), reward = TransformerModel(config: cfg, scalarHead: true)
        policy.initialize(seed: 1)
        reward.copyParameters(from: policy)
        guard let r = loraRank else {
            let reference = TransformerModel(config: cfg), value = TransformerModel(config: cfg, scalarHead: true)
            reference.copyParameters(from: policy)
            value.copyParameters(from: reward)
            return (policy, reference, value, reward)
        }
        let lc = LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture))
        policy.lora = try LoRAAdapters(config: lc, model: cfg, seed: 2)
        let value = TransformerModel(sharingWeightsOf: reward)
        value.lora = try LoRAAdapters(config: lc, model: cfg, scalarHead: true, seed: 3)
        if frozen == .bf16 { policy.holdProjectionsInBFloat16(); reward.holdProjectionsInBFloat16() }
        return (policy, TransformerModel(sharingWeightsOf: policy), value, reward)
    }

    /// One PPO iteration after a warm-up: (phase, seconds) and the total. The best of three for
    /// models up to M's size, one timed iteration for larger ones.
    static func benchPPO(_ cfg: ModelConfig, loraRank: Int? = nil, frozen: FrozenDType = .f32) throws -> ([(String, Double)], Double) {
        let (trainer, _, prompts, policy, _) = try ppoSetup(
            cfg, loraRank: loraRank, frozen: frozen, batch: 64, responseLength: 48, epochs: 4, minibatches: 4, iterations: 4,
            rewardRows: 16, promptLengths: 8...24)
        _ = trainer.step(prompts: prompts)
        // The best of three timed iterations, as the other measurements take the best run.
        var best: ([(String, Double)], Double) = ([], .infinity)
        let timed = policy.layout.count <= 40_000_000 ? 3 : 1
        for _ in 0..<timed {
            let t = Date()
            _ = trainer.step(prompts: prompts)
            let total = Date().timeIntervalSince(t)
            if total < best.1 { best = (trainer.profile, total) }
        }
        return best
    }

    /// A PPO trainer over `ppoModels(cfg, …)` (EOS 0, PAD 1) with the given shape of iteration,
    /// rewarded by the reward model through a runner, and `batch` random prompts with lengths in
    /// `promptLengths`.
    static func ppoSetup(
        _ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType, batch: Int, responseLength: Int, epochs: Int, minibatches: Int,
        iterations: Int, rewardRows: Int, promptLengths: ClosedRange<Int>
    ) throws -> (PPOTrainer, ScalarHeadRunner, [[Int32]], policy: TransformerModel, reward: TransformerModel) {
        let (policy, reference, value, reward) = try ppoModels(cfg, loraRank: loraRank, frozen: frozen)
        var settings = PPOConfig()
        settings.batch = batch
        settings.responseLength = responseLength
        settings.ppoEpochs = epochs
        settings.minibatches = minibatches
        settings.iterations = iterations
        let rm = ScalarHeadRunner(model: reward, rows: rewardRows)
        let trainer = PPOTrainer(policy: policy, reference: reference, value: value, eos: 0, pad: 1, settings: settings) { ps, rs in
            rm.scores(zip(ps, rs).map { $0 + $1 })
        }
        var rng = SeededRandom(seed: 7)
        let vocab = policy.config.vocabSize
        let prompts = (0..<settings.batch).map { _ in
            (0..<(promptLengths.lowerBound + rng.int(below: promptLengths.count))).map { _ in Int32(2 + rng.int(below: vocab - 2)) }
        }
        return (trainer, rm, prompts, policy, reward)
    }

    /// One PPO iteration on `cfg` (16 prompts, 32 response tokens, 1 epoch × 2 minibatches)
    /// with random models, fully fine-tuned or with rank-r LoRA: the bytes of each kind of live
    /// tensor, their total, the process's resident memory before the models existed, and the
    /// peak resident memory of the iteration.
    static func benchPPOMemory(_ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType = .f32) throws -> [(String, Int)] {
        guard resetPeakResident() else {
            throw RuntimeError("ppo-memory needs /proc/self/clear_refs to reset the peak resident memory")
        }
        let baseline = procStatusBytes("VmRSS")
        let (trainer, rm, prompts, _, reward) = try ppoSetup(
            cfg, loraRank: loraRank, frozen: frozen, batch: 16, responseLength: 32, epochs: 1, minibatches: 2, iterations: 1,
            rewardRows: 8, promptLengths: 16...24)
        _ = trainer.step(prompts: prompts)
        let peak = procStatusBytes("VmHWM")
        var parts = trainer.memoryBreakdown
        parts.insert(("reward model parameters", reward.weightBytes), at: 1)
        parts.append(("reward model activations", 4 * rm.activationFloatCount))
        let live = parts.reduce(0) { $0 + $1.1 }
        return parts + [
            ("live tensors, total", live), ("process before the models (code, runtime)", baseline),
            ("peak resident memory of the iteration", peak),
        ]
    }

    /// Resets the kernel's peak-RSS mark of this process (Linux: "5" to /proc/self/clear_refs).
    static func resetPeakResident() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        return (try? h.write(contentsOf: Data("5".utf8))) != nil
    }

    /// A "kB" field of /proc/self/status, in bytes (0 when unreadable).
    static func procStatusBytes(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }
}
