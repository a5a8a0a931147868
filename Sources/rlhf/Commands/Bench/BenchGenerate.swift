import Foundation
import TransformerCore

/// `rlhf bench --only generate`: new tokens/s of KV-cache sampling.
extension BenchCommand {
    /// The generate rows of one configuration: f32, then with `--frozen-dtype bf16` the
    /// bfloat16 projections.
    static func reportGenerate(_ out: BenchOutput, _ cfg: ModelConfig, name: String, repeats repeatCount: Int?, frozen: FrozenDType) {
        for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
            let tps = benchGenerate(cfg, repeats: repeatCount, frozen: dtype)
            out.emit(
                [
                    "what": "generate", "impl": "rlhf", "config": label(name), "batch": 8, "prompt": 16, "new": 64, "tokens_per_s": round2(tps),
                    "frozen_dtype": dtype.rawValue,
                ],
                text: "generate \(label(name))  8×(16+64)\(dtype == .bf16 ? " bf16" : "")\(precisionTag)".column(34) + "\(fmt(tps)) tokens/s")
        }
    }

    static func benchGenerate(_ cfg: ModelConfig, repeats: Int?, frozen: FrozenDType = .f32) -> Double {
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 3)
        if frozen == .bf16 { model.holdProjectionsInBFloat16() }
        let gen = Generator(model: model)
        var rng = SeededRandom(seed: 4)
        let prompts = (0..<8).map { _ in (0..<16).map { _ in Int32(rng.int(below: cfg.vocabSize)) } }
        let settings = SamplingSettings(temperature: 0.7)
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0) {
            var r = SeededRandom(seed: 5)
            _ = gen.generate(prompts: prompts, maxNewTokens: 64, settings: settings, eos: nil, pad: 0, rng: &r)
        }
        return Double(8 * 64) / seconds
    }
}
