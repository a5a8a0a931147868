import Foundation
import TransformerCore

/// `rlhf pretrain`: a base model from a text corpus.
enum PretrainCommand: Command {
    static let name = "pretrain"
    static let summary = "Train a tokenizer and a small GPT-2 or Llama base model on a corpus"
    static let help = """
    Usage: rlhf pretrain --corpus FILE -o DIR [--config S|M] [--arch gpt2|llama] [--vocab-size N]
                         [--steps N] [--seed S] [--batch B] [--lr X] [--template T]

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

    Options:
      --corpus FILE     the corpus
      -o DIR            output folder (replaced if it exists)
      --config C        S (default) or M
      --arch A          gpt2 (default) or llama
      --vocab-size N    tokenizer size including <|endoftext|> and <|pad|> (default 1024)
      --steps N         optimiser steps (default 600)
      --batch B         sequences per step (default 16)
      --lr X            peak learning rate (default 0.002; cosine decay after 40 warmup steps)
      --seed S          seed for initialisation, data order and the validation split (default 0)
      --template T      prompt template stored with the model (default "Q: {prompt}\\nA:");
                        "none" stores none
    """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--corpus", "-o", "--config", "--arch", "--vocab-size", "--steps", "--seed", "--batch", "--lr", "--template"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let corpusPath = a.string("--corpus") else { throw UsageError("--corpus FILE is required") }
        guard let out = a.string("-o") else { throw UsageError("-o DIR is required") }
        let cname = a.string("--config") ?? "S"
        let arch = a.string("--arch") ?? "gpt2"
        guard arch == "gpt2" || arch == "llama" else { throw UsageError("--arch must be gpt2 or llama, got '\(arch)'") }
        guard ["S", "M"].contains(cname.uppercased()), let config = ModelConfig.preset(arch == "llama" ? "llama-" + cname.lowercased() : cname) else {
            throw UsageError("--config must be S or M, got '\(cname)'")
        }
        var settings = PretrainSettings()
        settings.steps = try a.int("--steps", default: 600, range: 1...10_000_000)!
        settings.batch = try a.int("--batch", default: 16, range: 1...4096)!
        settings.seed = UInt64(try a.int("--seed", default: 0, range: 0...Int.max)!)
        settings.length = config.nCtx
        if let s = a.string("--lr") {
            guard let x = Float(s), x > 0, x < 1 else { throw UsageError("--lr expects a number in (0, 1), got '\(s)'") }
            settings.learningRate = x
        }
        let vocab = try a.int("--vocab-size", default: 1024, range: 258...1 << 20)!
        var template: String? = a.string("--template") ?? "Q: {prompt}\nA:"
        if template == "none" { template = nil }
        if let t = template, !t.contains("{prompt}") { throw UsageError("--template must contain {prompt}") }
        let corpus = try readUTF8File(corpusPath)
        Interrupt.install()
        let (model, report) = try build(corpus: corpus, config: config, vocabSize: vocab, settings: settings, template: template)
        try ModelFolder.save(model.model, tokenizer: model.tokenizer, annotations: model.annotations, to: URL(fileURLWithPath: out))
        print(String(format: "pretrained on %d documents (%d training tokens): train loss %.3f, validation loss %.3f, %@",
                     report.documents, report.trainTokens, report.trainLoss, report.validationLoss, ProgressBar.duration(report.seconds)))
        print("wrote \(out)")
    }

    /// Pretraining with progress bars; shared with the built-in default base model.
    static func build(corpus: String, config: ModelConfig, vocabSize: Int, settings: PretrainSettings, template: String?) throws -> (PretrainedModel, Pretraining.Report) {
        var tokBar: ProgressBar?, trainBar: ProgressBar?
        let result = try Pretraining.run(corpus: corpus, config: config, vocabSize: vocabSize, settings: settings, template: template, progress: { phase in
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
