import Foundation
import RewardTraining
import RunStore
import StageKit
import TransformerCore

/// `rlhf reward score`: the normalised reward of one completion.
enum RewardCommand: Command {
    static let name = "reward"
    static let summary = "Score a completion with the run's reward model (reward score)"
    static let help = """
        Usage: rlhf reward score [--run NAME] --prompt P --completion C [--model ID] [--no-eos] [--json]

        Prints the normalised reward (gain · head + bias) of the completion C of prompt P under the
        run's latest reward model (or model ID). The prompt is wrapped in the model's prompt template
        and the completion is taken as finished, so it is followed by EOS unless --no-eos.
        """

    static func run(_ args: [String]) throws {
        guard args.first == "score" else {
            throw UsageError(
                args.isEmpty ? "missing subcommand; use 'rlhf reward score'" : "unknown subcommand '\(args[0])'; use 'rlhf reward score'")
        }
        let a = try Arguments(Array(args.dropFirst()), options: ["--run", "--prompt", "--completion", "--model"], flags: ["--json", "--no-eos"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let prompt = a.string("--prompt") else { throw UsageError("--prompt P is required") }
        guard let completion = a.string("--completion") else { throw UsageError("--completion C is required") }
        let store = try openRun(a)
        let record: ModelRecord
        if let s = a.string("--model") {
            guard let id = Int64(s), let m = try store.model(id: id), m.role == .reward else {
                throw RuntimeError("--model \(s): no reward model with that id in the run")
            }
            record = m
        } else {
            guard let m = try store.latestModel(role: .reward) else {
                throw RuntimeError("the run has no reward model yet; train one with 'rlhf train-reward'")
            }
            record = m
        }
        let rm = try store.loadModel(record)
        guard rm.model.hasScalarHead else { throw RuntimeError("model #\(record.id) has no scalar head") }
        var body = rm.tokenizer.encode(completion, allowSpecial: false)
        if !a.flag("--no-eos"), let eos = rm.tokenizer.eosId { body.append(eos) }
        var seq = try rm.annotations.promptIds(prompt, tokenizer: rm.tokenizer) + body
        if seq.count > rm.model.config.nCtx { seq = Array(seq.suffix(rm.model.config.nCtx)) }
        let raw = ScalarHeadRunner(model: rm.model, rows: 1).scores([seq])[0]
        let score = (rm.annotations.rewardGain ?? 1) * raw + (rm.annotations.rewardBias ?? 0)
        if a.flag("--json") {
            print(jsonLine([("score", jsonNumber(Double(score))), ("raw", jsonNumber(Double(raw))), ("model_id", "\(record.id)")]))
        } else {
            print(String(format: "%.4f", score))
        }
    }
}
