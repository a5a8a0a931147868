import Foundation
import TransformerCore

/// `rlhf bench --only train`: tokens/s of a training step.
extension BenchCommand {
    /// The train rows of one configuration in the precision in use: full fine-tuning, then with
    /// `--lora-rank` LoRA (and with `--frozen-dtype bf16` LoRA over bfloat16 projections), each
    /// beside full fine-tuning; each with its GFLOPS and their share of the precision's peak.
    static func reportTrain(
        _ out: BenchOutput, _ peak: PeakReference, _ cfg: ModelConfig, name: String, repeats repeatCount: Int?, loraRank: Int?,
        frozen: FrozenDType
    ) throws {
        let (b, t) = trainShape(name)
        let (tps, loss) = try benchTrain(cfg, batch: b, length: t, repeats: repeatCount)
        let gflops = tps * (try trainFlopsPerToken(cfg, length: t, loraRank: nil)) / 1e9, share = peakShare(gflops, peak)
        out.emit(
            [
                "what": "train", "impl": "rlhf", "config": label(name), "B": b, "T": t, "tokens_per_s": round2(tps), "loss": round2(Double(loss)),
                "gflops": round2(gflops),
            ].merging(share.fields) { $1 },
            text: "train    \(label(name))  B×T \(b)×\(t)\(precisionTag)".column(34) + "\(fmt(tps)) tokens/s, \(fmt(gflops)) GFLOPS, \(share.text)")
        if let r = loraRank {
            for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                let (ltps, lloss) = try benchTrain(cfg, batch: b, length: t, repeats: repeatCount, loraRank: r, frozen: dtype)
                let lgflops = ltps * (try trainFlopsPerToken(cfg, length: t, loraRank: r)) / 1e9, lshare = peakShare(lgflops, peak)
                out.emit(
                    [
                        "what": "train", "impl": "rlhf", "config": label(name), "B": b, "T": t, "lora_rank": r, "frozen_dtype": dtype.rawValue,
                        "tokens_per_s": round2(ltps), "loss": round2(Double(lloss)), "gflops": round2(lgflops),
                    ].merging(lshare.fields) { $1 },
                    text: "train    \(label(name))  LoRA r\(r)\(dtype == .bf16 ? " bf16" : "")\(precisionTag)".column(34)
                        + "\(fmt(ltps)) tokens/s (\(fmt(ltps / tps))× full fine-tuning), \(fmt(lgflops)) GFLOPS, \(lshare.text)")
            }
        }
    }

    /// The flops of one training token of `cfg` at sequence length `length`, as PaLM counts them
    /// (appendix B): 6 per trained parameter (forward, input gradient, weight gradient), plus
    /// 12 · layers · heads · head size · length for attention (QKᵀ and AV, forward and
    /// backward, the causal mask not discounted). With rank-r LoRA on every projection, a frozen
    /// parameter costs 4 (no weight gradient) and the adapters' parameters 6 each.
    static func trainFlopsPerToken(_ cfg: ModelConfig, length: Int, loraRank: Int?) throws -> Double {
        let parameters = Double(ParameterLayout(config: cfg, scalarHead: false).count)
        let attention = 12 * Double(cfg.nLayer * cfg.nHead * cfg.headDim * length)
        guard let r = loraRank else { return 6 * parameters + attention }
        let lora = LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture))
        let adapters = Double(try LoRAAdapters(config: lora, model: cfg).parameters.count)
        return 4 * parameters + 6 * adapters + attention
    }

    /// Batch × length of the train measurement (and of PyTorch's) for a configuration.
    static func trainShape(_ name: String) -> (Int, Int) {
        switch name.uppercased() {
        case "S", "LLAMA-S": return (16, 128);
        case "M", "LLAMA-M": return (8, 256);
        default: return (4, 256)
        }
    }

    /// Training tokens/s; with `loraRank`, of rank-r adapters on every projection (α = 2r) over
    /// the frozen model, the optimiser stepping only the adapters.
    static func benchTrain(_ cfg: ModelConfig, batch: Int, length: Int, repeats: Int?, loraRank: Int? = nil, frozen: FrozenDType = .f32) throws -> (
        Double, Float
    ) {
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 1)
        if let r = loraRank {
            model.lora = try LoRAAdapters(
                config: LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture)), model: cfg, seed: 2)
            if frozen == .bf16 { model.holdProjectionsInBFloat16() }
        }
        let opt =
            model.lora.map { AdamW(lora: $0, config: AdamWConfig(learningRate: 1e-4)) }
            ?? AdamW(layout: model.layout, config: AdamWConfig(learningRate: 1e-4))
        let acts = Activations(config: cfg, batch: batch, length: length)
        var rng = SeededRandom(seed: 2)
        let tokens = (0..<batch * length).map { _ in Int32(rng.int(below: cfg.vocabSize)) }
        let targets = (0..<batch * length).map { i in i % length == length - 1 ? Int32(-1) : tokens[i + 1] }
        let tb = TokenBatch(tokens: tokens, batch: batch, length: length)
        var loss: Float = 0
        let step = {
            model.forward(tb, acts)
            loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
            if let lora = model.lora {
                lora.zeroGradients()
                model.backward(tb, acts, fromLogits: true)
                clipGradientNorm(lora.gradients, maxNorm: 1)
                opt.update(params: lora.parameters, grads: lora.gradients, lr: 1e-4)
            } else {
                model.zeroGradients()
                model.backward(tb, acts, fromLogits: true)
                clipGradientNorm(model.gradients, maxNorm: 1)
                opt.update(params: model.parameters, grads: model.gradients, lr: 1e-4)
            }
        }
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0, step)
        return (Double(batch * length) / seconds, loss)
    }
}
