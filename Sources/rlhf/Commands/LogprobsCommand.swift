import Foundation
import TransformerCore

/// `rlhf logprobs`: every token of a text with its log-probability given the tokens before it.
enum LogprobsCommand: Command {
    static let name = "logprobs"
    static let summary = "Print each token's log-probability under a model"
    static let help = """
        Usage: rlhf logprobs --model DIR|ORG/NAME --text T [--chat] [--no-special-tokens] [--json]

        Runs the model of DIR (a Hugging Face model folder) once over the tokens of T and prints, for
        each token, log p(token | tokens before it). The first token has none. The text is used as
        it is: no prompt template is applied. The tokens are those of transformers' tokenizer(T):
        with the tokens the tokenizer's post-processor adds, Llama 3's <|begin_of_text|> first, so
        the text's first token is scored given it; --no-special-tokens scores the bare text, as
        tokenizer(T, add_special_tokens=False). With --chat the text is one user turn of the model's
        chat template, followed by the assistant's generation prompt, and those tokens are scored.

        \(modelArgumentRule)

        Options:
          --model DIR|ORG/NAME  model folder, or a Hub model
          --text T              the text (at most n_positions tokens)
          --chat                apply the model's chat template to the text first
          --no-special-tokens   leave out the tokens the post-processor adds (BOS); no effect with --chat
          --json                print {"tokens": [{"id", "token", "text", "logprob"}], "sum": S}
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--model", "--text"], flags: ["--json", "--chat", "--no-special-tokens"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let text = a.string("--text") else { throw UsageError("--text T is required") }
        let m = try loadModelFolder(a.string("--model"))
        let ids =
            a.flag("--chat")
            ? try m.annotations.promptIds(text, tokenizer: m.tokenizer, chat: true)
            : a.flag("--no-special-tokens") ? m.tokenizer.encode(text) : m.tokenizer.encodeWithSpecialTokens(text)
        guard !ids.isEmpty else { throw UsageError("--text is empty: there are no tokens to score") }
        guard ids.count <= m.model.config.nCtx else {
            throw RuntimeError("the text is \(ids.count) tokens; the model takes at most \(m.model.config.nCtx)")
        }
        let lps = logProbabilities(m.model, ids)
        let sum = lps.dropFirst().reduce(0, +)
        if a.flag("--json") {
            let items = ids.enumerated().map { i, id in
                jsonLine([
                    ("id", "\(id)"), ("token", JSONText.quote(m.tokenizer.token(id))),
                    ("text", JSONText.quote(m.tokenizer.decode([id]))), ("logprob", i == 0 ? "null" : jsonNumber(Double(lps[i]))),
                ])
            }
            print(jsonLine([("tokens", "[" + items.joined(separator: ",") + "]"), ("sum", jsonNumber(Double(sum)))]))
            return
        }
        print("  pos     id  logprob  token")
        for (i, id) in ids.enumerated() {
            let lp = i == 0 ? "       —" : String(format: "%8.4f", lps[i])
            let shown = TerminalSafe.escape(bytes: m.tokenizer.decodeBytes([id]), keepNewlines: false, keepTabs: false)
            print(String(format: "%5d %6d ", i, id) + lp + "  " + JSONText.quote(shown).dropFirst().dropLast())
        }
        print(String(format: "sum of log-probabilities: %.4f over %d tokens", sum, ids.count - 1))
    }

    /// log p(ids[t] | ids[..<t]) for t ≥ 1 (index 0 holds 0).
    static func logProbabilities(_ model: TransformerModel, _ ids: [Int32]) -> [Float] {
        let batch = TokenBatch(tokens: ids, batch: 1, length: ids.count)
        let acts = Activations(config: model.config, batch: 1, length: ids.count)
        model.forward(batch, acts)
        let v = model.config.vocabSize
        var out = [Float](repeating: 0, count: ids.count)
        for t in 1..<max(1, ids.count) {
            let row = acts.logits.pointer + (t - 1) * v
            var mx = -Float.infinity
            for j in 0..<v { mx = max(mx, row[j]) }
            var s: Double = 0
            for j in 0..<v { s += Double(expf(row[j] - mx)) }
            out[t] = row[Int(ids[t])] - mx - Float(log(s))
        }
        return out
    }
}
