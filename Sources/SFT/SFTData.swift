import Foundation
import RunStore
import StageKit
import TransformerCore

/// One demonstration as SFT trains on it: its tokens, and which of them carry loss.
public struct SFTExample: Equatable, Sendable {
    /// The demonstration.
    public let demonstrationId: Int64
    /// Its prompt.
    public let promptId: Int64
    /// The sequence: the templated prompt and the completion, or a rendered conversation.
    public let ids: [Int32]
    /// Per token: whether predicting it is part of the loss (the completion's tokens and its stop
    /// token; a conversation's assistant tokens). Never the first token, which nothing predicts.
    public let lossMask: [Bool]

    /// An example of `ids`, `lossMask` marking the tokens that carry loss.
    public init(demonstrationId: Int64, promptId: Int64, ids: [Int32], lossMask: [Bool]) {
        precondition(ids.count == lossMask.count)
        self.demonstrationId = demonstrationId; self.promptId = promptId; self.ids = ids; self.lossMask = lossMask
    }

    /// Tokens that carry loss.
    public var lossTokens: Int { lossMask.dropFirst().reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// The run's demonstrations as token sequences.
public enum SFTData {
    /// The example of one demonstration, cut to `maxLength` tokens (the end is cut, as TRL's
    /// keep_start), or nil when no token that carries loss is left:
    /// - prompt and completion: the prompt as generation templates it, then the text encoded
    ///   (special-token text as plain text) and the first stop token, which all carry loss, as TRL's
    ///   `completion_only_loss` (its prompt–completion form appends EOS to the completion);
    /// - an imported conversation (`messages`): rendered through the chat template, the
    ///   assistant's tokens carrying loss (TRL's `assistant_only_loss`; see
    ///   `ModelAnnotations.maskedConversation`).
    public static func example(
        _ d: DemonstrationRecord, prompt: String, tokenizer: Tokenizer, annotations: ModelAnnotations, maxLength: Int
    ) throws -> SFTExample? {
        var ids: [Int32], mask: [Bool]
        if let json = d.demonstration.messages {
            let conversation = try annotations.maskedConversation(try messages(json, demonstration: d.id), tokenizer: tokenizer)
            ids = conversation.ids
            mask = conversation.assistant
        } else {
            let p = try annotations.promptIds(prompt, tokenizer: tokenizer)
            let c = annotations.scoredCompletionIds([], text: d.demonstration.text, stopped: true, tokenizer: tokenizer)
            ids = p + c
            mask = [Bool](repeating: false, count: p.count) + [Bool](repeating: true, count: c.count)
        }
        if ids.count > maxLength {
            ids = Array(ids.prefix(maxLength))
            mask = Array(mask.prefix(maxLength))
        }
        let ex = SFTExample(demonstrationId: d.id, promptId: d.demonstration.promptId, ids: ids, lossMask: mask)
        return ex.lossTokens > 0 ? ex : nil
    }

    /// A stored `messages` list: `[{"role": …, "content": …}, …]`, the content a string or a
    /// list of `{"type": "text", "text": …}` parts.
    public static func messages(_ json: String, demonstration id: Int64) throws -> [ChatMessage] {
        let bad = StoreError("demonstration #\(id): its messages are not a list of {\"role\", \"content\"} objects")
        guard let list = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { throw bad }
        return try list.map { m in
            guard let role = m["role"] as? String else { throw bad }
            switch m["content"] {
            case let s as String: return ChatMessage(role: role, content: s)
            case let parts as [[String: Any]]:
                return ChatMessage(role: role, content: parts.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined())
            default: throw bad
            }
        }
    }

    /// The examples of `demonstrations` (in their order), and how many were left out for having
    /// no loss-carrying token within `maxLength`.
    public static func examples(
        _ demonstrations: [DemonstrationRecord], store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, maxLength: Int
    ) throws -> (examples: [SFTExample], tooLong: Int) {
        var prompts: [Int64: String] = [:], out: [SFTExample] = [], tooLong = 0
        for d in demonstrations {
            let pid = d.demonstration.promptId
            if prompts[pid] == nil {
                guard let p = try store.prompt(id: pid) else { throw StoreError("demonstration #\(d.id): its prompt #\(pid) is not in the run") }
                prompts[pid] = p.text
            }
            if let ex = try example(d, prompt: prompts[pid]!, tokenizer: tokenizer, annotations: annotations, maxLength: maxLength) {
                out.append(ex)
            } else {
                tooLong += 1
            }
        }
        return (out, tooLong)
    }
}
