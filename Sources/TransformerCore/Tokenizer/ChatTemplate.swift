import Foundation
import Jinja

/// One turn of a conversation.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// A model's chat template: the subset of Jinja that Hugging Face chat templates use, rendered
/// as transformers renders them (`trim_blocks` and `lstrip_blocks` on) by Jinja's `Template`,
/// which lists what is supported. Anything else is refused when the template is read, with its
/// line and construct.
public final class ChatTemplate: @unchecked Sendable {
    /// The template text.
    public let source: String
    private let template: Template

    /// Parses a template; `name` appears in errors (a file name, say).
    public init(_ source: String, name: String = "chat template") throws {
        self.source = source
        do {
            template = try Template(source)
        } catch let e as TemplateError {
            throw FormatError("\(name): \(e.description)")
        }
    }

    /// `source` parsed once: stages template every prompt of a run with the same source.
    public static func parsed(_ source: String) throws -> ChatTemplate {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let t = cache[source] { return t }
        let t = try ChatTemplate(source)
        if cache.count >= 8 { cache.removeAll() }
        cache[source] = t
        return t
    }
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [String: ChatTemplate] = [:]

    /// The folder's chat template: `chat_template.jinja` (as transformers 5 saves it), else
    /// `chat_template` in `tokenizer_config.json` (a string, or a list of named templates, of
    /// which `default` is used). Nil when the folder has none.
    public static func load(folder: URL) throws -> ChatTemplate? {
        let file = folder.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: file.path) {
            let data = try JSONText.readFile(file, limit: 4 << 20)
            guard let text = String(data: data, encoding: .utf8) else { throw FormatError("\(file.path): not UTF-8 text") }
            return try ChatTemplate(text, name: file.path)
        }
        let cfg = folder.appendingPathComponent("tokenizer_config.json")
        guard FileManager.default.fileExists(atPath: cfg.path) else { return nil }
        let obj = try JSONText.object(JSONText.readFile(cfg, limit: 64 << 20), cfg.path)
        switch obj["chat_template"] {
        case let s as String: return try ChatTemplate(s, name: "\(cfg.path) chat_template")
        case let list as [Any]:
            for case let d as [String: Any] in list where d["name"] as? String == "default" {
                if let s = d["template"] as? String { return try ChatTemplate(s, name: "\(cfg.path) chat_template (default)") }
            }
            throw FormatError("\(cfg.path): chat_template is a list without a template named \"default\"")
        case nil, is NSNull: return nil
        default: throw FormatError("\(cfg.path): chat_template must be a string or a list of named templates")
        }
    }

    /// Renders a conversation as transformers' `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt:, **variables)` does. `specialTokens` are the tokenizer's named
    /// tokens (`bos_token`, `eos_token`, …); `now` is what `strftime_now` formats.
    public func render(
        messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
        variables: [String: String] = [:], now: Date = Date()
    ) throws -> String {
        var globals: [String: Variable] = [
            "messages": .list(messages.map { .dict([("role", .string($0.role)), ("content", .string($0.content))]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none, "documents": .none,
        ]
        for (k, v) in specialTokens { globals[k] = .string(v) }
        for (k, v) in variables { globals[k] = .string(v) }
        do {
            return try template.render(globals, now: now)
        } catch let e as TemplateError {
            throw FormatError("chat template: \(e.description)")
        }
    }

    /// Whether the template marks the assistant's text with `{% generation %}` blocks.
    public var marksGeneration: Bool { template.marksGeneration }

    /// `render` without the generation prompt, and the UTF-8 byte ranges of the rendered text
    /// that the template's `{% generation %}` blocks wrote (empty when it has none).
    public func renderMarkingGeneration(messages: [ChatMessage], specialTokens: [String: String] = [:], now: Date = Date()) throws -> (
        text: String, generation: [Range<Int>]
    ) {
        var globals: [String: Variable] = [
            "messages": .list(messages.map { .dict([("role", .string($0.role)), ("content", .string($0.content))]) }),
            "add_generation_prompt": .bool(false), "tools": .none, "documents": .none,
        ]
        for (k, v) in specialTokens { globals[k] = .string(v) }
        do {
            return try template.renderMarkingGeneration(globals, now: now)
        } catch let e as TemplateError {
            throw FormatError("chat template: \(e.description)")
        }
    }
}
