import Foundation
import Labeling
import RunStore
import TransformerCore

/// One fuzz target per parser that reads a file a user hands in. Each takes arbitrary bytes and
/// must return normally: a value or a thrown error, never a crash, a hang or an allocation sized
/// from an untrusted number. The libFuzzer harness (Tests/Fuzz/Package.swift, built only for
/// fuzzing) calls `run`; so does the smoke test of the default test suite, over the seed corpus
/// and mutations of it.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A `model.safetensors` file: header validation, then every float tensor read.
    case safetensors
    /// A model folder's `config.json`, loaded with a small valid `model.safetensors`, so that a
    /// huge declared shape must be refused before the model is allocated.
    case config
    /// A `model.safetensors.index.json`, loaded with two shards of a small model's weights (slots
    /// alternate between `model-00001-of-00002.safetensors` and `…00002…`).
    case safetensorsIndex = "safetensors-index"
    /// A Hugging Face `tokenizer.json`, then an encode/decode of a fixed text.
    case tokenizerJSON = "tokenizer-json"
    /// GPT-2's `vocab.json` and `merges.txt`, given as one input split at the first NUL byte.
    case vocabMerges = "vocab-merges"
    /// A prompt file for `rlhf prompts add`, read as JSONL, as text and by auto-detection.
    case prompts
    /// A TRL preference file for `rlhf labels import`.
    case trlPairs = "trl-pairs"
    /// A model folder's `chat_template.jinja`: parsed, then rendered for a short conversation.
    case chatTemplate = "chat-template"

    /// Runs the target on `data`: true when the parser returned a value, false when it threw (the
    /// expected outcome of most inputs). Anything else is a bug.
    @discardableResult
    public func run(_ data: Data) -> Bool {
        do {
            switch self {
            case .safetensors:
                let url = try Scratch.shared.write(data, as: "model.safetensors")
                let file = try SafeTensorsFile(url: url)
                for name in file.names where file.entries[name]!.dtype.isFloatLoadable {
                    _ = try file.floats(name)
                }
            case .config:
                let folder = try Scratch.shared.modelFolder(config: data)
                _ = try ModelFolder.load(folder)
            case .safetensorsIndex:
                let folder = try Scratch.shared.shardedFolder(index: data)
                _ = try ModelFolder.loadWeights(folder, config: Scratch.tinyConfig)
            case .tokenizerJSON:
                let url = try Scratch.shared.write(data, as: "tokenizer.json")
                try exercise(Tokenizer.load(tokenizerJSON: url))
            case .vocabMerges:
                let cut = data.firstIndex(of: 0) ?? data.endIndex
                let vocab = try Scratch.shared.write(data[data.startIndex..<cut], as: "vocab.json")
                let merges = try Scratch.shared.write(cut < data.endIndex ? data[(cut + 1)...] : Data(), as: "merges.txt")
                try exercise(Tokenizer.load(vocabJSON: vocab, mergesTXT: merges))
            case .prompts:
                for format in PromptFile.Format.allCases {
                    _ = try? PromptFile.parse(data, format: format, name: "fuzz")
                }
                let url = try Scratch.shared.write(data, as: "prompts.unknown")
                _ = try PromptFile.read(url)
            case .trlPairs:
                _ = try LabelsIO.parseTRL(data, name: "fuzz")
            case .chatTemplate:
                // ChatTemplate.load refuses text that is not UTF-8 before parsing.
                guard let text = String(data: data, encoding: .utf8) else { return false }
                let template = try ChatTemplate(text, name: "chat_template.jinja")
                let messages = [
                    ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi {{ there }} <|im_end|>"),
                    ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Bye\n"),
                ]
                _ = try template.render(
                    messages: messages, addGenerationPrompt: true,
                    specialTokens: ["bos_token": "<s>", "eos_token": "</s>"], now: Date(timeIntervalSince1970: 1_764_000_000))
            }
            return true
        } catch {
            return false
        }
    }

    /// Encodes and decodes a text that touches every byte class, with and without special tokens.
    private func exercise(_ t: Tokenizer) {
        let text = "Hello, world! It's 2026 — naïve café 日本語 <|endoftext|>\n\t  \u{0}\u{7f}x"
        for special in [true, false] {
            let ids = t.encode(text, allowSpecial: special)
            _ = t.decode(ids)
        }
        _ = t.decode([0, 1, 2, Int32(max(0, t.count - 1)), Int32(t.count), -1, Int32.max])
    }

    /// The seed corpus of this target under `corpusRoot` (Tests/Fuzz/Corpus/NAME).
    public func seeds(corpusRoot: URL) -> [Data] {
        let dir = corpusRoot.appendingPathComponent(rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().compactMap { try? Data(contentsOf: dir.appendingPathComponent($0)) }
    }
}

/// A per-process scratch folder the targets write their input into (parsers take paths).
final class Scratch: @unchecked Sendable {
    static let shared = Scratch()
    let dir: URL
    private let model: URL
    private let sharded: URL

    private init() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-fuzz-\(getpid())", isDirectory: true)
        model = dir.appendingPathComponent("model", isDirectory: true)
        sharded = dir.appendingPathComponent("sharded", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: sharded, withIntermediateDirectories: true)
            try Scratch.writeTinyModel(into: model, shardsInto: sharded)
        } catch {
            fatalError("cannot set up the fuzz scratch folder \(dir.path): \(error)")
        }
        atexit { try? FileManager.default.removeItem(at: Scratch.shared.dir) }
    }

    func write<D: DataProtocol>(_ data: D, as name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(data).write(to: url)
        return url
    }

    /// The folder holding the weights of `Scratch.tinyConfig`, a byte-level tokenizer of 258
    /// tokens, and `config` as config.json.
    func modelFolder(config: Data) throws -> URL {
        try config.write(to: model.appendingPathComponent(ModelFolder.configFile))
        return model
    }

    /// The folder holding the tiny model's weights in two shards, and `index` as its index.
    func shardedFolder(index: Data) throws -> URL {
        try index.write(to: sharded.appendingPathComponent(WeightFiles.indexFile))
        return sharded
    }

    /// The configuration whose weights every config input is loaded with.
    static let tinyConfig = ModelConfig(nLayer: 1, nHead: 2, nEmbd: 8, nCtx: 16, vocabSize: 258)

    private static func writeTinyModel(into folder: URL, shardsInto shardFolder: URL) throws {
        let model = TransformerModel(config: tinyConfig)
        let tensors = model.layout.slots.map { slot in
            SafeTensorsOutput(name: slot.name, shape: slot.shape, data: UnsafeBufferPointer(model.tensor(slot.name)))
        }
        try SafeTensorsWriter.write(tensors, to: folder.appendingPathComponent(ModelFolder.weightsFile))
        for s in 0..<2 {
            let mine = tensors.indices.filter { $0 % 2 == s }.map { tensors[$0] }
            try SafeTensorsWriter.write(mine, to: shardFolder.appendingPathComponent("model-0000\(s + 1)-of-00002.safetensors"))
        }
        var vocab: [String] = []
        for b in 0..<256 { vocab.append("\(JSONText.quote(ByteLevel.encode([UInt8(b)]))):\(b)") }
        vocab.append("\"<|endoftext|>\":256"); vocab.append("\"Ġt\":257")
        try Data("{\(vocab.joined(separator: ","))}".utf8).write(to: folder.appendingPathComponent("vocab.json"))
        try Data("#version: 0.2\nĠ t\n".utf8).write(to: folder.appendingPathComponent("merges.txt"))
    }
}
