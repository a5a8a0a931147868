import Foundation

extension Tokenizer {
    /// Loads the tokenizer of a folder: `tokenizer.json` when present, else `vocab.json` with
    /// `merges.txt`. Special tokens come from the files' added tokens and, for the vocab/merges
    /// pair, from `tokenizer_config.json` / `special_tokens_map.json` and `<|endoftext|>`.
    public static func load(folder: URL) throws -> Tokenizer {
        let fm = FileManager.default
        let tj = folder.appendingPathComponent("tokenizer.json")
        if fm.fileExists(atPath: tj.path) { return try load(tokenizerJSON: tj) }
        let vj = folder.appendingPathComponent("vocab.json"), mt = folder.appendingPathComponent("merges.txt")
        if fm.fileExists(atPath: vj.path) && fm.fileExists(atPath: mt.path) {
            return try load(vocabJSON: vj, mergesTXT: mt)
        }
        throw FormatError("\(folder.path): no tokenizer found (expected tokenizer.json, or vocab.json with merges.txt)")
    }

    /// Loads a Hugging Face `tokenizer.json` holding a BPE model with a ByteLevel pre-tokenizer.
    public static func load(tokenizerJSON url: URL) throws -> Tokenizer {
        let what = url.path
        let root = try JSONText.object(JSONText.readFile(url, limit: 512 << 20), what)
        guard let model = root["model"] as? [String: Any] else { throw FormatError("\(what): no \"model\" object") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else {
            throw FormatError("\(what): unsupported tokenizer type \(type); only byte-level BPE (GPT-2 style) is supported")
        }
        var nfc = false
        if let n = root["normalizer"], !(n is NSNull) {
            let type = (n as? [String: Any])?["type"] as? String ?? "?"
            guard type == "NFC" else {
                throw FormatError("\(what): normalizer \(type) is not supported; byte-level BPE tokenizers have none (GPT-2, Llama 3) or NFC (Qwen2)")
            }
            nfc = true
        }
        let (preTokenization, addPrefix) = try preTokenizer(root["pre_tokenizer"], what)
        let (prefixIds, suffixIds) = try postProcessor(root["post_processor"], what)
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty {
                throw FormatError("\(what): BPE \(key) \"\(s)\" is not supported by a byte-level tokenizer")
            }
        }
        if JSONText.bool(model["byte_fallback"]) == true {
            throw FormatError("\(what): byte_fallback BPE is not a byte-level tokenizer and is not supported")
        }
        if let d = JSONText.double(model["dropout"]), d > 0 { throw FormatError("\(what): BPE dropout is not supported") }
        guard let rawVocab = model["vocab"] as? [String: Any] else { throw FormatError("\(what): model.vocab is missing or not an object") }
        let vocab = try intMap(rawVocab, "\(what): model.vocab")
        guard let rawMerges = model["merges"] as? [Any] else { throw FormatError("\(what): model.merges is missing or not a list") }
        var merges: [(String, String)] = []
        merges.reserveCapacity(rawMerges.count)
        for (i, m) in rawMerges.enumerated() {
            if let s = m as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw FormatError("\(what): merge \(i + 1) \(JSONText.quote(s)) is not two tokens separated by a space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = m as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String {
                merges.append((a, b))
            } else {
                throw FormatError("\(what): merge \(i + 1) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        var special: [String: Int] = [:]
        for (i, t) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let t = t as? [String: Any], let content = t["content"] as? String, let id = JSONText.int(t["id"]) else {
                throw FormatError("\(what): added_tokens[\(i)] needs a string content and an integer id")
            }
            special[content] = id
        }
        let folder = url.deletingLastPathComponent()
        let pad = try configToken("pad_token", near: folder)
        return try Tokenizer(
            vocab: vocab, merges: merges, special: special,
            eos: try configToken("eos_token", near: folder) ?? "<|endoftext|>", pad: pad ?? "<|pad|>",
            bos: try configToken("bos_token", near: folder), addPrefixSpace: addPrefix, ignoreMerges: JSONText.bool(model["ignore_merges"]) ?? false,
            preTokenization: preTokenization, normalizesNFC: nfc, prefixIds: prefixIds, suffixIds: suffixIds)
    }

    /// Loads GPT-2's original `vocab.json` + `merges.txt` pair.
    public static func load(vocabJSON: URL, mergesTXT: URL) throws -> Tokenizer {
        let vocab = try intMap(JSONText.object(JSONText.readFile(vocabJSON, limit: 512 << 20), vocabJSON.path), vocabJSON.path)
        let data = try JSONText.readFile(mergesTXT, limit: 512 << 20)
        guard let text = String(data: data, encoding: .utf8) else { throw FormatError("\(mergesTXT.path): not valid UTF-8") }
        var merges: [(String, String)] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = line.hasSuffix("\r") ? line.dropLast() : line
            if l.isEmpty || (i == 0 && l.hasPrefix("#version")) { continue }
            let parts = l.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw FormatError("\(mergesTXT.path): line \(i + 1) is not two tokens separated by a space") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        var special: [String: Int] = [:]
        let folder = vocabJSON.deletingLastPathComponent()
        for name in try specialTokenNames(near: folder) + ["<|endoftext|>", "<|pad|>"] {
            if let id = vocab[name] { special[name] = id }
        }
        let pad = try configToken("pad_token", near: folder)
        return try Tokenizer(
            vocab: vocab, merges: merges, special: special, eos: "<|endoftext|>", pad: pad ?? "<|pad|>",
            bos: try configToken("bos_token", near: folder))
    }

    private static func intMap(_ raw: [String: Any], _ what: String) throws -> [String: Int] {
        var out: [String: Int] = [:]
        out.reserveCapacity(raw.count)
        for (k, v) in raw {
            guard let id = JSONText.int(v), id >= 0 else {
                throw FormatError("\(what): the id of \(JSONText.quote(k)) is not a non-negative integer")
            }
            out[k] = id
        }
        return out
    }

    /// Reads the pre-tokenizer: a ByteLevel one using GPT-2's pattern (alone or as the only member
    /// of a Sequence), or Llama 3's or Qwen2's `Sequence[Split(Regex), ByteLevel(use_regex
    /// false)]`. Returns the pattern and ByteLevel's add_prefix_space. Any other pattern is
    /// refused: this code reproduces these exactly and approximates nothing.
    private static func preTokenizer(_ raw: Any?, _ what: String) throws -> (PreTokenization, Bool) {
        guard var p = raw as? [String: Any] else { throw FormatError("\(what): no pre_tokenizer; a ByteLevel pre-tokenizer is required") }
        var pattern = PreTokenization.gpt2
        if p["type"] as? String == "Sequence", let list = p["pretokenizers"] as? [Any] {
            if list.count == 1, let only = list[0] as? [String: Any] {
                p = only
            } else if list.count == 2, let digits = list[0] as? [String: Any], let byteLevel = list[1] as? [String: Any],
                digits["type"] as? String == "Digits"
            {
                guard JSONText.bool(digits["individual_digits"]) == true else {
                    throw FormatError("\(what): a Digits pre-tokenizer without individual_digits is not supported")
                }
                guard byteLevel["type"] as? String == "ByteLevel", JSONText.bool(byteLevel["use_regex"]) != false else {
                    throw FormatError("\(what): after the Digits pre-tokenizer a ByteLevel with GPT-2's pattern (use_regex true) is required")
                }
                pattern = .gpt2Digits
                p = byteLevel
            } else if list.count == 2, let split = list[0] as? [String: Any], let byteLevel = list[1] as? [String: Any],
                split["type"] as? String == "Split"
            {
                guard let regex = (split["pattern"] as? [String: Any])?["Regex"] as? String,
                    let known = [PreTokenization.llama3, .qwen2].first(where: { $0.splitPattern == regex })
                else {
                    throw FormatError("\(what): the Split pre-tokenizer's pattern is not Llama 3's or Qwen2's, the ones this code reproduces exactly")
                }
                guard split["behavior"] as? String == "Isolated", JSONText.bool(split["invert"]) != true else {
                    throw FormatError("\(what): a Split pre-tokenizer must be behavior Isolated, invert false")
                }
                guard byteLevel["type"] as? String == "ByteLevel", JSONText.bool(byteLevel["use_regex"]) == false else {
                    throw FormatError("\(what): after the Split pre-tokenizer a ByteLevel with use_regex false is required")
                }
                pattern = known
                p = byteLevel
            } else {
                throw FormatError(
                    "\(what): this Sequence of pre-tokenizers is not supported; only ByteLevel, Digits then ByteLevel (SmolLM), or Split then ByteLevel (Llama 3, Qwen2)"
                )
            }
        }
        let type = p["type"] as? String ?? "?"
        guard type == "ByteLevel" else {
            throw FormatError("\(what): pre-tokenizer \(type) is not supported; only ByteLevel (GPT-2), or Split then ByteLevel (Llama 3, Qwen2)")
        }
        if pattern == .gpt2 || pattern == .gpt2Digits, JSONText.bool(p["use_regex"]) == false {
            throw FormatError("\(what): a ByteLevel pre-tokenizer without GPT-2's pattern (use_regex false) is not supported")
        }
        return (pattern, JSONText.bool(p["add_prefix_space"]) ?? false)
    }

    /// Reads the post-processor: nothing, ByteLevel (which adds no tokens), or a
    /// TemplateProcessing (alone or in a Sequence) whose `single` template is special tokens
    /// around `$A`; returns the ids put before and after the text.
    private static func postProcessor(_ raw: Any?, _ what: String) throws -> ([Int32], [Int32]) {
        guard let p = raw as? [String: Any] else { return ([], []) }
        var parts = [p]
        if p["type"] as? String == "Sequence" { parts = (p["processors"] as? [Any] ?? []).compactMap { $0 as? [String: Any] } }
        var prefix: [Int32] = [], suffix: [Int32] = []
        for part in parts {
            switch part["type"] as? String {
            case "ByteLevel": continue
            case "TemplateProcessing":
                guard let single = part["single"] as? [Any], let specials = part["special_tokens"] as? [String: Any] else {
                    throw FormatError("\(what): TemplateProcessing needs single and special_tokens")
                }
                var seenA = false
                for item in single {
                    guard let item = item as? [String: Any] else { throw FormatError("\(what): a TemplateProcessing item is not an object") }
                    if let seq = item["Sequence"] as? [String: Any] {
                        guard seq["id"] as? String == "A", !seenA else { throw FormatError("\(what): the single template must hold $A once") }
                        seenA = true
                    } else if let sp = item["SpecialToken"] as? [String: Any], let name = sp["id"] as? String {
                        guard let entry = specials[name] as? [String: Any], let ids = entry["ids"] as? [Any] else {
                            throw FormatError("\(what): the template's special token \(JSONText.quote(name)) has no ids")
                        }
                        let values = try ids.map { v -> Int32 in
                            guard let i = JSONText.int(v), i >= 0, i < 1 << 24 else {
                                throw FormatError("\(what): the ids of \(JSONText.quote(name)) are not token ids")
                            }
                            return Int32(i)
                        }
                        if seenA { suffix += values } else { prefix += values }
                    } else {
                        throw FormatError("\(what): a TemplateProcessing item is neither a SpecialToken nor a Sequence")
                    }
                }
                guard seenA else { throw FormatError("\(what): the single template must hold $A") }
            default:
                throw FormatError("\(what): post_processor \(part["type"] as? String ?? "?") is not supported; only ByteLevel and TemplateProcessing")
            }
        }
        return (prefix, suffix)
    }

    /// Special token strings named in tokenizer_config.json / special_tokens_map.json.
    private static func specialTokenNames(near folder: URL) throws -> [String] {
        var names: [String] = []
        for file in ["special_tokens_map.json", "tokenizer_config.json"] {
            let url = folder.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let obj = try JSONText.object(JSONText.readFile(url, limit: 64 << 20), url.path)
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let s = obj[key] as? String { names.append(s) }
                if let d = obj[key] as? [String: Any], let s = d["content"] as? String { names.append(s) }
            }
            if let dec = obj["added_tokens_decoder"] as? [String: Any] {
                for case let d as [String: Any] in dec.values { if let s = d["content"] as? String { names.append(s) } }
            }
        }
        return names
    }

    /// The token `tokenizer_config.json` names under `key` (`pad_token`, `eos_token`, `bos_token`).
    private static func configToken(_ key: String, near folder: URL) throws -> String? {
        let url = folder.appendingPathComponent("tokenizer_config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let obj = try JSONText.object(JSONText.readFile(url, limit: 64 << 20), url.path)
        if let s = obj[key] as? String { return s }
        if let d = obj[key] as? [String: Any] { return d["content"] as? String }
        return nil
    }

    // MARK: Writing

    /// Writes `tokenizer.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json` and
    /// `special_tokens_map.json` into `folder`, each atomically. `maxLength` is the model's context.
    public func save(to folder: URL, maxLength: Int) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Like GPT-2's own files, the vocabulary lists every token, special ones included.
        let vocabBody = tokens.enumerated().map { "\(JSONText.quote($0.element)):\($0.offset)" }.joined(separator: ",")
        let mergeStrings = merges.map { tokens[Int($0.0)] + " " + tokens[Int($0.1)] }
        let specials = specialTokens.sorted { $0.value < $1.value }
        let added = specials.map {
            "{\"id\":\($0.value),\"content\":\(JSONText.quote($0.key)),\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}"
        }.joined(separator: ",")
        let prefix = addPrefixSpace ? "true" : "false"
        var preTokenizer = "{\"type\":\"ByteLevel\",\"add_prefix_space\":\(prefix),\"trim_offsets\":true,\"use_regex\":true}"
        if preTokenization == .gpt2Digits {
            preTokenizer = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},\(preTokenizer)]}"
        }
        if let regex = preTokenization.splitPattern {
            preTokenizer =
                "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\(JSONText.quote(regex))},"
                + "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":\(prefix),\"trim_offsets\":true,\"use_regex\":false}]}"
        }
        var postProcessor = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true}"
        if !prefixIds.isEmpty || !suffixIds.isEmpty {
            func item(_ id: Int32, _ type: Int) -> String { "{\"SpecialToken\":{\"id\":\(JSONText.quote(tokens[Int(id)])),\"type_id\":\(type)}}" }
            func seq(_ name: String, _ type: Int) -> String { "{\"Sequence\":{\"id\":\"\(name)\",\"type_id\":\(type)}}" }
            let single = prefixIds.map { item($0, 0) } + [seq("A", 0)] + suffixIds.map { item($0, 0) }
            let pair = single + prefixIds.map { item($0, 1) } + [seq("B", 1)] + suffixIds.map { item($0, 1) }
            let specials = Set(prefixIds + suffixIds).sorted().map {
                "\(JSONText.quote(tokens[Int($0)])):{\"id\":\(JSONText.quote(tokens[Int($0)])),\"ids\":[\($0)],\"tokens\":[\(JSONText.quote(tokens[Int($0)]))]}"
            }
            postProcessor =
                "{\"type\":\"Sequence\",\"processors\":[\(postProcessor),{\"type\":\"TemplateProcessing\",\"single\":[\(single.joined(separator: ","))],"
                + "\"pair\":[\(pair.joined(separator: ","))],\"special_tokens\":{\(specials.joined(separator: ","))}}]}"
        }
        let tokenizerJSON = """
            {"version":"1.0","truncation":null,"padding":null,"added_tokens":[\(added)],\
            "normalizer":\(normalizesNFC ? "{\"type\":\"NFC\"}" : "null"),\
            "pre_tokenizer":\(preTokenizer),\
            "post_processor":\(postProcessor),\
            "decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},\
            "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"",\
            "fuse_unk":false,"byte_fallback":false,"ignore_merges":\(ignoreMerges),"vocab":{\(vocabBody)},\
            "merges":[\(mergeStrings.map(JSONText.quote).joined(separator: ","))]}}

            """
        let fullVocab = "{" + vocabBody + "}\n"
        let mergesTXT = "#version: 0.2\n" + mergeStrings.map { $0 + "\n" }.joined()
        let eos = eosId.map { JSONText.quote(tokens[Int($0)]) } ?? "null"
        let bos = (bosId ?? eosId).map { JSONText.quote(tokens[Int($0)]) } ?? "null"
        let pad = padId.map { JSONText.quote(tokens[Int($0)]) } ?? "null"
        let decoder = specials.map {
            "\"\($0.value)\":{\"content\":\(JSONText.quote($0.key)),\"lstrip\":false,\"normalized\":false,\"rstrip\":false,\"single_word\":false,\"special\":true}"
        }.joined(separator: ",")
        let config = """
            {"tokenizer_class":"\(preTokenization == .gpt2 ? "GPT2Tokenizer" : "PreTrainedTokenizerFast")","model_max_length":\(maxLength),"add_prefix_space":\(prefix),\
            "clean_up_tokenization_spaces":false,"bos_token":\(bos),"eos_token":\(eos),"unk_token":\(eos),"pad_token":\(pad),\
            "added_tokens_decoder":{\(decoder)}}

            """
        let specialMap = "{\"bos_token\":\(bos),\"eos_token\":\(eos),\"unk_token\":\(eos)\(padId != nil ? ",\"pad_token\":\(pad)" : "")}\n"
        try AtomicFile.write(Data(tokenizerJSON.utf8), to: folder.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(Data(fullVocab.utf8), to: folder.appendingPathComponent("vocab.json"))
        try AtomicFile.write(Data(mergesTXT.utf8), to: folder.appendingPathComponent("merges.txt"))
        try AtomicFile.write(Data(config.utf8), to: folder.appendingPathComponent("tokenizer_config.json"))
        try AtomicFile.write(Data(specialMap.utf8), to: folder.appendingPathComponent("special_tokens_map.json"))
    }
}
