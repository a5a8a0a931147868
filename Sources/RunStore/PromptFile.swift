import Foundation

/// Reads prompt files for `rlhf prompts add`: JSONL (`{"prompt": "..."}` per line, other keys
/// kept as metadata; the prompt may also be TRL's conversational form, one user message) or
/// plain text with one prompt per line. Parsing is all or nothing: the first
/// bad line is an error with its line number, and nothing is returned.
public enum PromptFile {
    /// How a file is read.
    public enum Format: String, CaseIterable, Sendable {
        case auto, jsonl, text
    }

    /// The largest prompt file accepted.
    public static let maxBytes = 256 << 20

    /// Parses the file at `url`.
    /// `key` names the JSON key that holds the prompt (`prompt` unless told otherwise: GSM8K's
    /// `question`, Alpaca's `instruction`).
    public static func read(_ url: URL, format: Format = .auto, key: String = "prompt") throws -> [NewPrompt] {
        let name = url.path
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: name) else {
            throw StoreError("\(name): no such file")
        }
        if let size = attrs[.size] as? Int, size > maxBytes {
            throw StoreError("\(name): \(size) bytes is over the \(maxBytes)-byte limit for a prompt file")
        }
        var data = Data()
        // An empty regular file is not read: Foundation's Data(contentsOf:) leaks a 4 KiB buffer
        // on it (LeakSanitizer reports it at exit).
        if !(attrs[.type] as? FileAttributeType == .typeRegular && attrs[.size] as? Int == 0) {
            do { data = try Data(contentsOf: url) } catch { throw StoreError("\(name): cannot read (\(error.localizedDescription))") }
        }
        var f = format
        if f == .auto {
            let ext = url.pathExtension.lowercased()
            if ext == "jsonl" || ext == "ndjson" || ext == "json" {
                f = .jsonl
            } else if ext == "txt" {
                f = .text
            } else {
                let firstLine = data.split(separator: UInt8(ascii: "\n")).first { !$0.allSatisfy { $0 == 32 || $0 == 9 || $0 == 13 } }
                f = firstLine?.first(where: { $0 != 32 && $0 != 9 }) == UInt8(ascii: "{") ? .jsonl : .text
            }
        }
        return try parse(data, format: f, name: name, key: key)
    }

    /// Parses file contents (`name` is used in messages).
    public static func parse(_ data: Data, format: Format, name: String, key: String = "prompt") throws -> [NewPrompt] {
        var out: [NewPrompt] = []
        var lineNo = 0
        let bytes = [UInt8](data)
        var start = 0
        // Skip a UTF-8 byte-order mark.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 10 { end += 1 }
            lineNo += 1
            var slice = bytes[start..<end]
            if slice.last == 13 { slice = slice.dropLast() }
            start = end + 1
            if end == bytes.count && slice.isEmpty { break }
            guard let line = String(validating: slice, as: UTF8.self) else {
                throw StoreError("\(name):\(lineNo): not valid UTF-8")
            }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            switch format {
            case .text, .auto:
                if line.contains("\0") { throw StoreError("\(name):\(lineNo): the line contains a NUL character") }
                out.append(NewPrompt(text: line))
            case .jsonl:
                out.append(try jsonLine(line, name: name, lineNo: lineNo, key: key))
            }
        }
        if out.isEmpty { throw StoreError("\(name): no prompts (the file is empty or has only blank lines)") }
        return out
    }

    private static func jsonLine(_ line: String, name: String, lineNo: Int, key: String) throws -> NewPrompt {
        let obj: Any
        do {
            guard !StrictJSON.hasTrailingComma(line) else { throw StoreError("trailing comma") }
            obj = try JSONSerialization.jsonObject(with: Data(line.utf8))
        } catch {
            throw StoreError("\(name):\(lineNo): invalid JSON")
        }
        let k = "\"\(key)\""
        guard var dict = obj as? [String: Any] else { throw StoreError("\(name):\(lineNo): expected a JSON object like {\(k): \"...\"}") }
        guard let raw = dict.removeValue(forKey: key) else {
            let keys = dict.keys.sorted().prefix(8).map { "\"\($0)\"" }.joined(separator: ", ")
            throw StoreError("\(name):\(lineNo): no \(k) key (the line has \(keys.isEmpty ? "no keys" : keys); --key names another)")
        }
        let text: String
        if let s = raw as? String {
            text = s
        } else if let messages = raw as? [Any] {
            text = try userTurn(messages, at: "\(name):\(lineNo)", key: k)
        } else {
            throw StoreError("\(name):\(lineNo): \(k) must be a string, or a list holding one user message (TRL's conversational form)")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw StoreError("\(name):\(lineNo): \(k) is empty") }
        if text.contains("\0") { throw StoreError("\(name):\(lineNo): \(k) contains a NUL character") }
        var metadata: String?
        if !dict.isEmpty {
            let d = try JSONSerialization.data(withJSONObject: dict, options: [.sortedKeys, .withoutEscapingSlashes])
            metadata = String(decoding: d, as: UTF8.self)
        }
        return NewPrompt(text: text, metadata: metadata)
    }

    /// The text of a conversational prompt, `[{"role": "user", "content": …}]`, as TRL's
    /// prompt-only datasets hold it. Content is a string, or a list of `{"type": "text",
    /// "text": …}` parts (joined). A prompt is one user turn: a system message or a longer
    /// conversation is refused, since the model's chat template lays out that one turn.
    static func userTurn(_ messages: [Any], at: String, key: String) throws -> String {
        guard messages.count == 1, let m = messages[0] as? [String: Any] else {
            let roles = messages.compactMap { ($0 as? [String: Any])?["role"] as? String }
            let what = roles.contains("system") ? "a system message" : "\(messages.count) messages"
            throw StoreError("\(at): \(key) holds \(what); a prompt is one user message (the model's chat template adds its own system message)")
        }
        guard let role = m["role"] as? String, role == "user" else {
            throw StoreError("\(at): the message in \(key) must have role \"user\"")
        }
        if let c = m["content"] as? String { return c }
        if let parts = m["content"] as? [Any] {
            var text = ""
            for part in parts {
                guard let d = part as? [String: Any], d["type"] as? String == "text", let t = d["text"] as? String else {
                    throw StoreError(
                        "\(at): the message's content parts must be {\"type\": \"text\", \"text\": …} (images and other parts are not supported)")
                }
                text += t
            }
            return text
        }
        throw StoreError("\(at): the message in \(key) needs \"content\": a string or a list of text parts")
    }
}

/// What Foundation's JSON parser lets through that JSON forbids.
public enum StrictJSON {
    /// Whether `text` has a comma right before a closing `}` or `]` (outside strings), which
    /// JSONSerialization accepts but JSON, and Python's json module, reject.
    public static func hasTrailingComma(_ text: String) -> Bool {
        var inString = false, escaped = false, lastSignificant: UInt8 = 0
        for b in text.utf8 {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true; lastSignificant = b
            case 32, 9, 10, 13: continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if lastSignificant == UInt8(ascii: ",") { return true }
                lastSignificant = b
            default: lastSignificant = b
            }
        }
        return false
    }
}
