import Foundation
import StageKit
import TransformerCore

/// `rlhf pretrain`: a base model from a text corpus.
enum PretrainCommand: Command {
    static let name = "pretrain"
    static let summary = "Train a tokenizer and a small GPT-2 or Llama base model on a corpus"
    static let help = """
        Usage: rlhf pretrain --corpus FILE -o DIR [--config S|M] [--arch gpt2|llama] [--vocab-size N]
                             [--steps N] [--seed S] [--batch B] [--lr X] [--template T] [--precision f32|bf16]

        1. trains a byte-level BPE tokenizer of N tokens on the corpus;
        2. trains a model of configuration S (4 layers, 128 wide, context 128) or M (6 layers, 384
           wide, context 256) from scratch, with a progress bar showing loss and tokens/s: a GPT-2,
           or with --arch llama a Llama (RMSNorm, rotary positions, SwiGLU, 2 key/value heads, tied
           embeddings: the presets llama-s and llama-m);
        3. holds out 5% of the documents and reports their loss;
        4. writes a Hugging Face folder (config.json, model.safetensors, tokenizer files) with the
           prompt template stored in config.json, so every stage formats prompts the same way.

        The corpus is UTF-8 text whose documents are separated by lines holding only <|endoftext|>,
        such as prompts/corpus.txt (documents "Q: …\\nA: …", written by prompts/make_prompts.py).

        Options (defaults in brackets):
        \(PretrainConfig.help(column: 20))
        """

    static func run(_ args: [String]) throws {
        let c = try StageArguments<PretrainConfig>(args, options: []).config
        let corpusPath = c.corpus!, out = c.output!
        let corpus = try readUTF8File(corpusPath)
        Kernels.precision = c.precision
        Interrupt.install()
        let (model, report) = try build(corpus: corpus, config: c.modelConfig!, vocabSize: c.vocabSize, settings: c.training, template: c.template)
        try ModelFolder.save(model.model, tokenizer: model.tokenizer, annotations: model.annotations, to: URL(fileURLWithPath: out))
        print(
            String(
                format: "pretrained on %d documents (%d training tokens): train loss %.3f, validation loss %.3f, %@",
                report.documents, report.trainTokens, report.trainLoss, report.validationLoss, ProgressBar.duration(report.seconds)))
        print("wrote \(out)")
    }

    /// Pretraining with progress bars; shared with the built-in default base model.
    static func build(corpus: String, config: ModelConfig, vocabSize: Int, settings: PretrainSettings, template: String?) throws -> (
        PretrainedModel, Pretraining.Report
    ) {
        var tokBar: ProgressBar?, trainBar: ProgressBar?
        let result = try Pretraining.run(
            corpus: corpus, config: config, vocabSize: vocabSize, settings: settings, template: template,
            progress: { phase in
                switch phase {
                case .tokenizer(let d, let t):
                    if tokBar == nil { tokBar = ProgressBar("tokenizer", total: t, unit: "merges") }
                    tokBar!.update(d)
                case .training(let s, let t, let loss, let tps):
                    if trainBar == nil { tokBar?.finish(); trainBar = ProgressBar("pretrain", total: t, unit: "steps") }
                    trainBar!.update(s, note: String(format: "loss %.3f · %.0f tokens/s", loss, tps))
                }
            }, shouldStop: { Interrupt.requested })
        trainBar?.finish()
        if Interrupt.requested { throw RuntimeError("interrupted; nothing was written") }
        return result
    }
}
