import Foundation
import SFT
import TransformerCore

/// `rlhf bench --only sft`: an SFT step beside the pretraining step of the same shape.
extension BenchCommand {
    /// The sft rows, one per configuration: the SFT step's tokens/s and its ratio to the train
    /// row's (the pretraining step), each the best of repeated steps in three alternating rounds
    /// in the same process.
    static func reportSFT(_ out: BenchOutput, configs: [String], repeats: Int?) throws {
        for name in configs {
            let cfg = ModelConfig.preset(name)!
            let (b, t) = trainShape(name)
            // Three rounds, each path in turn, the best of each: a load that comes and goes
            // (other processes) then weighs on both alike.
            var pretrain = 0.0, sft = 0.0
            for _ in 0..<3 {
                pretrain = max(pretrain, try benchTrain(cfg, batch: b, length: t, repeats: repeats).0)
                sft = max(sft, benchSFT(cfg, batch: b, length: t, repeats: repeats))
            }
            out.emit(
                [
                    "what": "sft", "config": label(name), "B": b, "T": t, "tokens_per_s": round2(sft), "pretrain_tokens_per_s": round2(pretrain),
                    "ratio": round3(sft / pretrain),
                ],
                text: "sft      \(label(name))  B×T \(b)×\(t)\(precisionTag)".column(34)
                    + "\(fmt(sft)) tokens/s, \(fmt(sft / pretrain))× the pretraining step's \(fmt(pretrain))")
        }
    }

    /// SFT steps (`SFTTrainer`, full fine-tuning) over `batch` sequences of `length` tokens whose
    /// first quarter is the prompt: tokens/s counted as the train row counts them.
    static func benchSFT(_ cfg: ModelConfig, batch: Int, length: Int, repeats: Int?) -> Double {
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 1)
        let opt = AdamW(training: model, config: AdamWConfig(learningRate: 1e-4))
        var rng = SeededRandom(seed: 2)
        let examples = (0..<batch).map { i in
            SFTExample(
                demonstrationId: Int64(i), promptId: Int64(i), ids: (0..<length).map { _ in Int32(rng.int(below: cfg.vocabSize)) },
                lossMask: (0..<length).map { $0 >= length / 4 })
        }
        let trainer = SFTTrainer(model: model, rows: batch, pad: 0)
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0) {
            _ = trainer.accumulateGradients(examples)
            clipGradientNorm(model.trainableGradients, maxNorm: 1)
            opt.update(params: model.trainableParameters, grads: model.trainableGradients, lr: 1e-4)
        }
        return Double(batch * length) / seconds
    }
}
