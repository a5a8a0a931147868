import StageKit
import TransformerCore

/// Every setting of `rlhf train-reward`: its defaults, its command-line options and their help,
/// and its validation. Stored with the stage run under the keys below, those it has always had.
public struct RewardConfig: StageConfig, Equatable {
    public var epochs = 3
    public var learningRate: Float = 5e-5
    /// Rankings per optimiser step.
    public var batch = 8
    public var seed: UInt64 = 0
    public var validationFraction = 0.1
    public var margin: Float = 0
    /// The model to start from: nil (the run's base), a model id of the run, or a folder.
    public var initModel: String?
    public var maxGradNorm: Float = 1
    public var weightDecay: Float = 0
    /// Sequences per forward pass.
    public var microBatch = 16
    /// LoRA adapters (and the head) to train over the frozen starting model; nil trains every
    /// weight.
    public var lora: LoRAConfig?
    /// With LoRA, the float type the frozen projections are held in.
    public var frozenDType: FrozenDType = .f32
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32
    /// Whether human judgments of two policies (`rlhf compare --judge human`) join the rankings
    /// as pairs (`--with-judgments`); nil (absent from the stored settings) means no.
    public var withJudgments: Bool?

    /// The learning rate with LoRA when --lr is not given: adapters and a fresh head want a larger
    /// one than full fine-tuning (20 times the default).
    public static let loraLearningRate: Float = 1e-3

    public init() {}

    /// A number in (0, 1) or any finite one, with this command's message.
    static func float(_ name: String, _ s: String, unit: Bool) throws -> Float {
        try parseNumber(name, s, valid: { !unit || ($0 > 0 && $0 < 1) }, invalid: "\(name): invalid value '\(s)'")
    }

    public static let options: [ConfigOption<RewardConfig>] = [
        .int("--epochs", \.epochs, range: 1...10_000, "passes over the training rankings"),
        .value("--lr", "X", \.learningRate, "peak learning rate", shown: { formatDefault($0) }) { try float("--lr", $0, unit: true) },
        .int("--batch", \.batch, range: 1...100_000, "rankings per optimiser step"),
        .seed(\.seed, "seed for the head, the split and the order"),
        // Read as a Float, as this command always has, so the same text gives the same split.
        .value("--val-fraction", "F", \.validationFraction, "fraction of prompts held out", shown: { formatDefault($0) }) {
            Double(try float("--val-fraction", $0, unit: true))
        },
        .value("--margin", "M", \.margin, "subtracted inside the sigmoid", shown: { formatDefault($0) }) { try float("--margin", $0, unit: false) },
        .value("--init", "ID|DIR", \.initModel, "start from this model instead of the base", shown: { _ in nil }) { $0 },
        LoRAOptions.group(\.lora) { c, t in c.frozenDType = t },
        PrecisionOption.option(\.precision),
        ConfigOption(
            rows: [
                ("--with-judgments", ["also learn from human judgments of two policies (rlhf compare", "--judge human): each decided one is a pair"])
            ],
            valued: [], switches: ["--with-judgments"], apply: { c, given in if given.flags.contains("--with-judgments") { c.withJudgments = true } }),
    ]

    public mutating func finish(given: GivenOptions) throws {
        if lora != nil && !given.has("--lr") { learningRate = Self.loraLearningRate }
    }

    public var validationError: String? {
        if !(validationFraction > 0 && validationFraction < 1) { return "--val-fraction must be between 0 and 1 (exclusive)" }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case epochs, learningRate = "lr", batch, seed, validationFraction = "val_fraction", margin, initModel = "init"
        case maxGradNorm = "max_grad_norm", weightDecay = "weight_decay", microBatch = "micro_batch", lora, frozenDType = "frozen_dtype"
        case precision, withJudgments = "with_judgments"
    }
}
