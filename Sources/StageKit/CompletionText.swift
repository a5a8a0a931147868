import RunStore
import TransformerCore

/// A completion as a screen shows it.
public enum CompletionText {
    /// The bytes to show for each completion: decoded from its token ids with its model's
    /// tokenizer (so invalid UTF-8 the model produced is shown as such, escaped), else its stored
    /// text. `tokenizers` caches each model's tokenizer (nil when it cannot be loaded).
    public static func displayBytes(_ records: [CompletionRecord], store: RunStore, tokenizers: inout [Int64: Tokenizer?]) -> [[UInt8]] {
        records.map { c in
            guard let m = c.modelId, !c.tokenIds.isEmpty else { return Array(c.text.utf8) }
            if tokenizers[m] == nil {
                let tok: Tokenizer? = (try? store.model(id: m)).flatMap { $0 }.flatMap { try? Tokenizer.load(folder: try store.checkpointFolder($0)) }
                tokenizers[m] = .some(tok)
            }
            guard let tok = tokenizers[m] ?? nil else { return Array(c.text.utf8) }
            let ids = c.finishReason == "eos" ? Array(c.tokenIds.dropLast()) : c.tokenIds
            return tok.decodeBytes(ids)
        }
    }
}
