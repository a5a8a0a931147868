import Foundation

/// A conversation as supervised fine-tuning reads it: its tokens, and which of them are the
/// assistant's (the only ones that carry loss, as TRL's `assistant_only_loss`).
public struct MaskedConversation: Equatable, Sendable {
    /// The rendered conversation's tokens.
    public var ids: [Int32]
    /// Per token: whether it is part of an assistant turn.
    public var assistant: [Bool]
}

extension ModelAnnotations {
    /// `messages` laid out as this model's prompts are laid out here (the model's chat template
    /// when prompts go through it, else the template that reproduces its prompt layout,
    /// `exportedChatTemplate`), encoded as transformers encodes a rendered template, with the
    /// assistant's tokens marked:
    /// - through the template's `{% generation %}` blocks where it has them (transformers'
    ///   `return_assistant_tokens_mask`: a token is the assistant's when any of its bytes is);
    /// - otherwise from the template's prefixes: the text an assistant turn adds after the
    ///   conversation before it with the generation prompt, which needs a template whose
    ///   renderings of a conversation's beginnings are prefixes of the whole (TRL's
    ///   prefix-preserving templates).
    public func maskedConversation(_ messages: [ChatMessage], tokenizer: Tokenizer) throws -> MaskedConversation {
        guard messages.contains(where: { $0.role == "assistant" }) else { throw FormatError("the conversation has no assistant turn") }
        let template = try ChatTemplate.parsed(exportedChatTemplate(tokenizer))
        let specials = tokenizer.namedSpecialTokens
        let (text, marked) = try template.renderMarkingGeneration(messages: messages, specialTokens: specials)
        var ranges = marked
        if !template.marksGeneration {
            let bytes = Array(text.utf8)
            for (i, m) in messages.enumerated() where m.role == "assistant" {
                let before = try template.render(messages: Array(messages[..<i]), addGenerationPrompt: true, specialTokens: specials)
                let through = try template.renderMarkingGeneration(messages: Array(messages[...i]), specialTokens: specials).text
                let b = Array(before.utf8), t = Array(through.utf8)
                guard t.starts(with: b), bytes.starts(with: t) else {
                    throw FormatError(
                        "the chat template has no {% generation %} markers and does not render a conversation's beginnings as prefixes of it, so the assistant's tokens cannot be told apart; add {% generation %} … {% endgeneration %} around the assistant's text"
                    )
                }
                if t.count > b.count { ranges.append(b.count..<t.count) }
            }
        }
        let ids = tokenizer.encode(text)
        // Each token's bytes, in order, cover the text: a token is the assistant's when it
        // overlaps an assistant range.
        var assistant: [Bool] = []
        assistant.reserveCapacity(ids.count)
        var offset = 0
        for id in ids {
            let n = tokenizer.decodeBytes([id]).count
            let span = offset..<(offset + n)
            assistant.append(ranges.contains { $0.overlaps(span) })
            offset += n
        }
        guard offset == text.utf8.count else {
            throw FormatError(
                "the conversation's tokens do not decode to its text (a normalising tokenizer?), so the assistant's tokens cannot be found")
        }
        return MaskedConversation(ids: ids, assistant: assistant)
    }
}
