import Foundation
import TransformerCore

/// `rlhf bench --only precision`: what bfloat16 products do to training. The built-in base
/// model's recipe (config S, the bundled corpus, its tokenizer) pretrained for a few steps from
/// the same seed, on the same batches, in f32 and in bf16.
extension BenchCommand {
    /// Optimiser steps of each of the two trainings (the first 40 warm the learning rate up).
    static let precisionSteps = 60

    /// The precision rows: each precision's final training loss, validation loss and time; the
    /// bf16 row also gives its differences from the f32 one (bf16 − f32), a line of their own in
    /// the text.
    static func reportPrecision(_ out: BenchOutput) throws {
        let recipe = DefaultBase.Recipe()
        let documents = LanguageModelTrainer.documents(corpus: String(decoding: try DefaultBase.corpus(), as: UTF8.self))
        let tokenizer = try BPETrainer.train(corpus: documents.joined(separator: "\n"), vocabSize: recipe.vocabSize)
        guard let eos = tokenizer.eosId else { throw RuntimeError("the tokenizer trained on \(DefaultBase.corpusPath) has no <|endoftext|>") }
        let encoded = documents.map { tokenizer.encode($0, allowSpecial: false) + [eos] }
        var config = recipe.config
        config.vocabSize = tokenizer.count
        var settings = recipe.settings
        settings.steps = precisionSteps
        let name = "S, \(precisionSteps) steps"
        var f32Losses: (train: Float, validation: Float)?
        for precision in [Precision.f32, .bf16] {
            Kernels.using(precision: precision) {
                let model = TransformerModel(config: config)
                model.initialize(seed: settings.seed)
                let trainer = LanguageModelTrainer(model: model, documents: encoded, settings: settings)
                let t0 = Date()
                let loss = trainer.run()
                let seconds = Date().timeIntervalSince(t0)
                let validation = trainer.validationLoss()
                var fields: [String: Any] = [
                    "what": "precision", "config": "S", "steps": precisionSteps, "loss": round5(Double(loss)),
                    "val_loss": round5(Double(validation)), "seconds": round2(seconds),
                ]
                // The bf16 row also carries its differences from the f32 one.
                if let f = f32Losses {
                    fields["loss_diff"] = round5(Double(loss - f.train))
                    fields["val_loss_diff"] = round5(Double(validation - f.validation))
                } else {
                    f32Losses = (loss, validation)
                }
                out.emit(
                    fields,
                    text: "precision \(name)\(precisionTag)".column(34)
                        + String(format: "loss %.4f, validation loss %.4f (%.1f s)", loss, validation, seconds))
                if let f = f32Losses, precision == .bf16 {
                    out.textOnly(
                        "precision \(name) bf16 − f32".column(34)
                            + String(format: "loss %+.4f, validation loss %+.4f", loss - f.train, validation - f.validation))
                }
            }
        }
    }
}
