import Foundation

/// How a run's prompt layout leaves the project: as a chat template other tools apply, and as
/// plain text they tokenize.
extension ModelAnnotations {
    /// The text of the first stop token (`<|endoftext|>`, `<|im_end|>`, …): what ends a
    /// completion that stopped, written after it where a tool reads completions as text.
    public func stopText(_ tokenizer: Tokenizer) -> String? {
        stopTokens(tokenizer).first.map { tokenizer.decode([$0]) }
    }

    /// The chat template that lays a prompt out as this model's prompts are laid out here: the
    /// model's own when prompts go through it, otherwise one written by `reproducingChatTemplate`.
    /// For one user turn with the generation prompt, transformers' `apply_chat_template` then
    /// gives the ids of `promptIds` (for prompts without special-token text in them).
    public func exportedChatTemplate(_ tokenizer: Tokenizer) -> String {
        if usesChatTemplate(), let own = chatTemplate { return own }
        return ChatTemplate.reproducing(
            promptTemplate: promptTemplate, prefix: tokenizer.decode(tokenizer.prefixIds),
            stop: stopText(tokenizer))
    }

    /// The prompt as text that `tokenizer(text)` in transformers (special tokens added, as TRL's
    /// trainers call it) turns into `promptIds`: the templated prompt, less the post-processor's
    /// prefix (Llama 3's `<|begin_of_text|>`) when a chat template already wrote it.
    public func standaloneText(_ prompt: String, tokenizer: Tokenizer) throws -> String {
        let text = try promptText(prompt, tokenizer: tokenizer)
        let prefix = tokenizer.decode(tokenizer.prefixIds)
        if usesChatTemplate() && !prefix.isEmpty && text.hasPrefix(prefix) { return String(text.dropFirst(prefix.count)) }
        return text
    }
}

extension ChatTemplate {
    /// A chat template for a plain prompt layout (`Q: {prompt}\nA:`, or the raw prompt when
    /// `promptTemplate` is nil): `prefix` (the tokens the tokenizer puts first) once, then each
    /// user turn through the layout, each assistant turn as its text followed by `stop`. The
    /// layout already ends where the answer begins, so the generation prompt adds nothing, and
    /// a prompt renders the same with or without it. Message content may be a string or a list
    /// of `{"type": "text", "text": …}` parts (as OpenRLHF sends it); other roles are refused.
    public static func reproducing(promptTemplate: String?, prefix: String, stop: String?) -> String {
        let parts = (promptTemplate ?? "{prompt}").components(separatedBy: "{prompt}")
        let user = parts.map(jinjaString).joined(separator: " + content + ")
        var lines = [
            "{#- Written by rlhf export: lays a prompt out as the aligned model saw it"
                + (promptTemplate.map { " (prompt template " + JSONText.quote($0).replacingOccurrences(of: "#}", with: "# }") + ")" }
                    ?? " (the raw prompt)") + ". -#}"
        ]
        if !prefix.isEmpty { lines.append("{{- \(jinjaString(prefix)) -}}") }
        lines += [
            "{%- for message in messages -%}",
            "{%- if message['content'] is string -%}",
            "{%- set content = message['content'] -%}",
            "{%- else -%}",
            "{%- set parts = namespace(text='') -%}",
            "{%- for part in message['content'] -%}",
            "{%- if part['type'] == 'text' -%}{%- set parts.text = parts.text + part['text'] -%}{%- endif -%}",
            "{%- endfor -%}",
            "{%- set content = parts.text -%}",
            "{%- endif -%}",
            "{%- if message['role'] == 'user' -%}",
            "{{- \(user) -}}",
            "{%- elif message['role'] == 'assistant' -%}",
            "{{- content\(stop.map { " + " + jinjaString($0) } ?? "") -}}",
            "{%- else -%}",
            "{{- raise_exception('this model was aligned on single user prompts; a ' + message['role'] + ' message has no place in its layout') -}}",
            "{%- endif -%}",
            "{%- endfor -%}",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `s` as a single-quoted Jinja string literal. Jinja reads literals with Python's escapes;
    /// control characters are written as `\xNN` so the template stays one printable text.
    static func jinjaString(_ s: String) -> String {
        var out = "'"
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\x%02x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "'"
    }
}

extension ModelAnnotations {
    /// The ids a completion is scored with after its prompt: the ids it was generated as (its
    /// stop token included when it stopped), or, for text without them (imported), the text
    /// encoded with special-token text as plain text and the first stop token when it stopped.
    public func scoredCompletionIds(_ stored: [Int32], text: String, stopped: Bool, tokenizer: Tokenizer) -> [Int32] {
        if !stored.isEmpty { return stored }
        var body = tokenizer.encode(text, allowSpecial: false)
        if stopped, let stop = stopTokens(tokenizer).first { body.append(stop) }
        return body
    }
}
