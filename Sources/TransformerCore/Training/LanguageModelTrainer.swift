import Foundation

/// Settings of `LanguageModelTrainer`.
public struct PretrainSettings: Codable, Equatable, Sendable {
    /// Optimiser steps.
    public var steps = 600
    /// Sequences per step.
    public var batch = 16
    /// Tokens per sequence (at most the model's n_ctx).
    public var length = 128
    /// Peak learning rate (cosine decay to a tenth of it after a linear warmup).
    public var learningRate: Float = 2e-3
    public var warmupSteps = 40
    public var weightDecay: Float = 0.05
    public var seed: UInt64 = 0
    /// Documents held out for the validation loss.
    public var validationFraction = 0.05

    public init() {}
}

/// Trains a GPT-2 language model from scratch on a corpus of documents, each ending in EOS.
///
/// Every training sequence starts at the beginning of a document (so the model sees documents at
/// position 0, as it will when it continues a prompt) and runs on into the following documents.
public final class LanguageModelTrainer {
    public let model: TransformerModel
    public let settings: PretrainSettings
    let train: [[Int32]]
    let validation: [[Int32]]
    private let trainStream: [Int32]
    private let trainStarts: [Int]

    /// Splits `documents` (already tokenized, each ending in EOS) into train and validation, seeded.
    public init(model: TransformerModel, documents: [[Int32]], settings: PretrainSettings) {
        precondition(documents.count >= 2, "need at least two documents")
        self.model = model
        var s = settings
        s.length = min(s.length, model.config.nCtx)
        self.settings = s
        var rng = SeededRandom(seed: settings.seed ^ 0x5EED)
        var order = Array(documents.indices)
        rng.shuffle(&order)
        let nVal = max(1, Int((Double(documents.count) * settings.validationFraction).rounded()))
        validation = order.prefix(nVal).map { documents[$0] }
        train = order.dropFirst(nVal).map { documents[$0] }
        var stream: [Int32] = [], starts: [Int] = []
        for d in train { starts.append(stream.count); stream += d }
        trainStream = stream; trainStarts = starts
    }

    /// Tokens in the training documents.
    public var trainTokens: Int { trainStream.count }

    /// Runs the optimisation; `progress(step, loss, tokensPerSecond)` after each step, and
    /// `shouldStop` before each. Returns the last training loss.
    @discardableResult
    public func run(progress: ((Int, Float, Double) -> Void)? = nil, shouldStop: () -> Bool = { false }) -> Float {
        let b = settings.batch, t = settings.length
        let acts = Activations(config: model.config, batch: b, length: t)
        let opt = AdamW(
            layout: model.layout,
            config: AdamWConfig(
                learningRate: settings.learningRate, beta1: 0.9, beta2: 0.95,
                eps: 1e-8, weightDecay: settings.weightDecay))
        let schedule = LearningRateSchedule(
            kind: .cosine, peak: settings.learningRate, warmupSteps: settings.warmupSteps,
            totalSteps: settings.steps, minimum: settings.learningRate / 10)
        var rng = SeededRandom(seed: settings.seed)
        var loss: Float = 0
        let start = Date()
        for step in 0..<settings.steps {
            if shouldStop() { break }
            var tokens = [Int32](repeating: 0, count: b * t), targets = [Int32](repeating: -1, count: b * t)
            for row in 0..<b {
                let s = trainStarts[rng.int(below: trainStarts.count)]
                for j in 0..<t {
                    tokens[row * t + j] = trainStream[(s + j) % trainStream.count]
                    targets[row * t + j] = trainStream[(s + j + 1) % trainStream.count]
                }
            }
            let batch = TokenBatch(tokens: tokens, batch: b, length: t)
            model.forward(batch, acts)
            loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
            model.zeroGradients()
            model.backward(batch, acts, fromLogits: true)
            clipGradientNorm(model.gradients, maxNorm: 1)
            opt.update(params: model.parameters, grads: model.gradients, lr: schedule.rate(at: step))
            progress?(step + 1, loss, Double((step + 1) * b * t) / max(1e-9, Date().timeIntervalSince(start)))
        }
        return loss
    }

    /// Mean next-token cross-entropy over the validation documents (each scored from its start).
    public func validationLoss() -> Float {
        let t = settings.length
        var total: Double = 0, count = 0
        let docs = validation.filter { $0.count >= 2 }
        let b = 16
        let acts = Activations(config: model.config, batch: b, length: t)
        var i = 0
        while i < docs.count {
            let chunk = Array(docs[i..<min(i + b, docs.count)])
            var tokens = [Int32](repeating: 0, count: b * t), targets = [Int32](repeating: -1, count: b * t)
            var n = 0
            for (row, d) in chunk.enumerated() {
                let len = min(d.count, t + 1)
                for j in 0..<(len - 1) { tokens[row * t + j] = d[j]; targets[row * t + j] = d[j + 1] }
                n += len - 1
            }
            model.forward(TokenBatch(tokens: tokens, batch: b, length: t), acts)
            let l = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: false)
            total += Double(l) * Double(n); count += n
            i += b
        }
        return count > 0 ? Float(total / Double(count)) : .nan
    }

    /// Documents of a corpus: text separated by lines holding only `<|endoftext|>`.
    public static func documents(corpus: String) -> [String] {
        corpus.components(separatedBy: "\n<|endoftext|>\n").flatMap { $0.components(separatedBy: "<|endoftext|>") }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }
}

/// The whole of `rlhf pretrain`: a tokenizer trained on the corpus, then a model trained on it.
public enum Pretraining {
    /// What happened, for the report.
    public struct Report: Sendable {
        public var documents: Int
        public var trainTokens: Int
        public var trainLoss: Float
        public var validationLoss: Float
        public var seconds: Double
    }

    /// Phases of the work, for progress display.
    public enum Phase { case tokenizer(done: Int, total: Int), training(step: Int, total: Int, loss: Float, tokensPerSecond: Double) }

    /// Trains a byte-level BPE tokenizer of `vocabSize` and a model of `config` (its vocabulary
    /// resized to the tokenizer) on `corpus` (documents separated by `<|endoftext|>` lines).
    public static func run(
        corpus: String, config: ModelConfig, vocabSize: Int, settings: PretrainSettings, template: String?,
        progress: ((Phase) -> Void)? = nil, shouldStop: () -> Bool = { false }
    ) throws -> (PretrainedModel, Report) {
        let start = Date()
        let docs = LanguageModelTrainer.documents(corpus: corpus)
        guard docs.count >= 20 else {
            throw FormatError(
                "the corpus has \(docs.count) documents; pretraining needs at least 20 (separate them with lines holding <|endoftext|>)")
        }
        let tok = try BPETrainer.train(corpus: docs.joined(separator: "\n"), vocabSize: vocabSize) { d, t in progress?(.tokenizer(done: d, total: t))
        }
        var cfg = config
        cfg.vocabSize = tok.count
        let model = TransformerModel(config: cfg)
        model.initialize(seed: settings.seed)
        let eos = tok.eosId!
        let encoded = docs.map { tok.encode($0, allowSpecial: false) + [eos] }
        let trainer = LanguageModelTrainer(model: model, documents: encoded, settings: settings)
        let loss = trainer.run(
            progress: { s, l, tps in progress?(.training(step: s, total: settings.steps, loss: l, tokensPerSecond: tps)) },
            shouldStop: shouldStop)
        let val = trainer.validationLoss()
        let report = Report(
            documents: docs.count, trainTokens: trainer.trainTokens, trainLoss: loss, validationLoss: val,
            seconds: Date().timeIntervalSince(start))
        return (PretrainedModel(model: model, tokenizer: tok, annotations: ModelAnnotations(promptTemplate: template)), report)
    }
}
