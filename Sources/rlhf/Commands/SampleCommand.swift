import Foundation
import StageKit
import TransformerCore

/// `rlhf sample`: one completion of a prompt.
enum SampleCommand: Command {
    static let name = "sample"
    static let summary = "Sample a completion of a prompt from a model"
    static let help = """
        Usage: rlhf sample --model DIR|ORG/NAME --prompt T [--max-new-tokens N] [--temperature X] [--top-k K]
                           [--top-p P] [--seed S] [--greedy] [--raw | --chat] [--json]

        Samples with the KV cache until the end-of-text token or N new tokens. When the model carries
        a prompt template (rlhf_prompt_template in config.json, such as "Q: {prompt}\\nA:"), the
        prompt is wrapped in it, as every stage does; --raw feeds the prompt as it is. --chat puts the
        prompt into the model's chat template instead (one user turn and the assistant's generation
        prompt, as transformers' apply_chat_template). Sampling stops at any of the model's stop
        tokens (eos_token_id of generation_config.json or config.json, which may be a list). Generated
        text is printed with control characters and escape sequences made visible.

        \(modelArgumentRule)

        Options:
          --model DIR|ORG/NAME  model folder, or a Hub model
          --prompt T            the prompt
          --max-new-tokens N    at most N new tokens (default 64; limited by n_positions)
          --temperature X       softmax temperature (default 0.7)
          --top-k K             sample among the K most likely tokens only
          --top-p P             nucleus sampling: the smallest set with probability ≥ P (default 1)
          --seed S              random seed (default 0); the same seed gives the same text
          --greedy              always take the most likely token
          --raw                 ignore the model's prompt template
          --chat                apply the model's chat template to the prompt
          --json                print {"prompt", "completion", "ids", "finish_reason", "logprob_sum"}
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args, options: ["--model", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed"],
            flags: ["--greedy", "--raw", "--chat", "--json"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let prompt = a.string("--prompt") else { throw UsageError("--prompt T is required") }
        let settings = try samplingSettings(a)
        let maxNew = try a.int("--max-new-tokens", default: 64, range: 0...1_000_000)!
        let seed = try a.int("--seed", default: 0, range: 0...Int.max)!
        let m = try loadModelFolder(a.string("--model"))
        if a.flag("--raw") && a.flag("--chat") { throw UsageError("give at most one of --raw and --chat") }
        let text = a.flag("--raw") ? prompt : try m.annotations.promptText(prompt, tokenizer: m.tokenizer, chat: a.flag("--chat"))
        let ids = a.flag("--raw") ? m.tokenizer.encode(text) : try m.annotations.promptIds(prompt, tokenizer: m.tokenizer, chat: a.flag("--chat"))
        guard !ids.isEmpty else { throw UsageError("--prompt is empty: the model needs at least one token to continue") }
        guard ids.count < m.model.config.nCtx else {
            throw RuntimeError("the prompt is \(ids.count) tokens; the model's context is \(m.model.config.nCtx)")
        }
        let budget = min(maxNew, m.model.config.nCtx - ids.count)
        var rng = SeededRandom(seed: UInt64(seed))
        let g = Generator(model: m.model).generate(
            prompts: [ids], maxNewTokens: budget, settings: settings,
            stopTokens: m.annotations.stopTokens(m.tokenizer), pad: m.tokenizer.padId ?? 0, rng: &rng)[0]
        let body = g.finishReason == .eos ? Array(g.tokens.dropLast()) : g.tokens
        let completion = m.tokenizer.decodeBytes(body)
        if a.flag("--json") {
            print(
                jsonLine([
                    ("prompt", JSONText.quote(text)),
                    ("completion", JSONText.quote(String(decoding: completion, as: UTF8.self))),
                    ("ids", "[" + g.tokens.map(String.init).joined(separator: ",") + "]"),
                    ("finish_reason", JSONText.quote(g.finishReason.rawValue)),
                    ("logprob_sum", jsonNumber(Double(g.logProbs.reduce(0, +)))),
                ]))
        } else {
            print(TerminalSafe.escape(bytes: completion))
        }
    }

    /// Sampling options shared by the commands that sample.
    static func samplingSettings(_ a: Arguments) throws -> SamplingSettings {
        try SamplingOptions.parse(GivenOptions(values: a.options, flags: a.flags))
    }
}
