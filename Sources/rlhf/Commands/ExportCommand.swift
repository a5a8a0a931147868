import Foundation
import TransformerCore
import RunStore

/// `rlhf export`: a model of a run as a Hugging Face GPT-2 folder.
enum ExportCommand: Command {
    static let name = "export"
    static let summary = "Write a model of a run as a Hugging Face GPT-2 folder"
    static let help = """
    Usage: rlhf export [--run NAME] [--model policy|reward|value|base|ID] -o DIR

    Writes the run's latest policy (the default), reward model, value model, base model, or the
    model with that id, as a Hugging Face GPT-2 folder: config.json, model.safetensors (F32) and
    the tokenizer files. The policy loads with transformers' GPT2LMHeadModel.from_pretrained and
    its tokenizer with AutoTokenizer.from_pretrained; a reward or value model is written as
    GPT2ForSequenceClassification (num_labels 1), its normalisation in config.json
    (rlhf_reward_gain, rlhf_reward_bias). The checkpoint's hash is checked first. DIR is replaced.
    """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--model", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let out = a.string("-o") else { throw UsageError("-o DIR is required") }
        let store = try openRun(a)
        let which = a.string("--model") ?? "policy"
        let record: ModelRecord
        if let id = Int64(which) {
            guard let m = try store.model(id: id) else { throw RuntimeError("the run has no model #\(id)") }
            record = m
        } else {
            guard let role = ModelRole(rawValue: which) else { throw UsageError("--model must be policy, reward, value, base, reference or an id, got '\(which)'") }
            guard let m = try store.latestModel(role: role) else { throw RuntimeError("the run has no \(role.rawValue) model") }
            record = m
        }
        let model = try ModelFolder.load(try store.verifiedFolder(record, sha256: SHA256.hex(of:)))
        try ModelFolder.save(model.model, tokenizer: model.tokenizer, annotations: model.annotations, to: URL(fileURLWithPath: out))
        print("wrote the \(record.role.rawValue) model #\(record.id) (\(record.path)) to \(out)")
    }
}
