import Foundation

/// What this project stores with a model besides its weights, in `config.json` under `rlhf_*`
/// keys (Hugging Face keeps unknown keys, so they survive a round trip through transformers).
public struct ModelAnnotations: Equatable, Sendable {
    /// How a prompt is wrapped before it is fed to the model, with `{prompt}` where the prompt
    /// goes (for example `Q: {prompt}\nA:`); nil means the raw prompt.
    public var promptTemplate: String?
    /// Reward normalisation: reward = gain · head + bias (reward models only).
    public var rewardGain: Float?
    /// See `rewardGain`.
    public var rewardBias: Float?
    /// The float type the weights were published in (F32, F16 or BF16), which `rlhf export`
    /// writes by default: `rlhf_source_dtype` when the folder has it, else the type of its
    /// weights. Weights are always computed on, and checkpointed, in F32.
    public var sourceDType: SafeTensorsDType?
    /// The model's own chat template (Jinja source), from `chat_template.jinja` or
    /// `tokenizer_config.json`; written back as `chat_template.jinja`.
    public var chatTemplate: String?
    /// The ids that end generation (`eos_token_id` of generation_config.json, else of
    /// config.json; a list for Llama 3 Instruct). Empty: the tokenizer's end-of-text token.
    public var stopTokenIds: [Int32] = []
    /// Named chat templates besides the default one, written as
    /// `additional_chat_templates/NAME.jinja` (transformers 5 offers them by name).
    public var additionalChatTemplates: [String: String] = [:]
    /// Where the weights came from (run, model id, stage run, …), as one JSON object, written
    /// under `rlhf_provenance` in config.json by `rlhf export`. Not inherited.
    public var provenance: String?

    /// Annotations.
    public init(promptTemplate: String? = nil, rewardGain: Float? = nil, rewardBias: Float? = nil, sourceDType: SafeTensorsDType? = nil,
                chatTemplate: String? = nil, stopTokenIds: [Int32] = []) {
        self.promptTemplate = promptTemplate; self.rewardGain = rewardGain; self.rewardBias = rewardBias
        self.sourceDType = sourceDType; self.chatTemplate = chatTemplate; self.stopTokenIds = stopTokenIds
    }

    /// What a model derived from this one (a policy, reward or value checkpoint) keeps: the
    /// prompt template, chat template and stop tokens, without reward normalisation.
    public var inherited: ModelAnnotations {
        ModelAnnotations(promptTemplate: promptTemplate, sourceDType: sourceDType, chatTemplate: chatTemplate, stopTokenIds: stopTokenIds)
    }

    /// The text fed to the model for `prompt` with the explicit prompt template (no chat template).
    public func format(prompt: String) -> String {
        guard let t = promptTemplate else { return prompt }
        return t.replacingOccurrences(of: "{prompt}", with: prompt)
    }

    /// How a prompt reaches the model. Precedence: the run's explicit prompt template, then the
    /// model's chat template (one user turn, generation prompt added, as transformers'
    /// `apply_chat_template(..., add_generation_prompt=True)`), then the raw prompt. `chat`
    /// false skips the chat template; true requires one.
    public func promptText(_ prompt: String, tokenizer: Tokenizer, chat: Bool? = nil) throws -> String {
        guard usesChatTemplate(chat) else { return format(prompt: prompt) }
        guard let source = chatTemplate else {
            throw FormatError("the model has no chat template (chat_template.jinja or chat_template in tokenizer_config.json)")
        }
        return try ChatTemplate.parsed(source).render(messages: [ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true,
                                                      specialTokens: tokenizer.namedSpecialTokens)
    }

    /// The token ids of a prompt, as `promptText` lays it out. A chat-templated prompt is
    /// encoded as transformers encodes the rendered template (special tokens in the text are
    /// matched, and nothing is added); otherwise special-token text in the prompt is plain text
    /// and the tokenizer's post-processor prefix (Llama 3's `<|begin_of_text|>`) comes first, as
    /// `tokenizer(prompt)` in transformers gives it.
    public func promptIds(_ prompt: String, tokenizer: Tokenizer, chat: Bool? = nil) throws -> [Int32] {
        let text = try promptText(prompt, tokenizer: tokenizer, chat: chat)
        if usesChatTemplate(chat) { return tokenizer.encode(text) }
        return tokenizer.prefixIds + tokenizer.encode(text, allowSpecial: false)
    }

    /// Whether `promptText` applies the chat template.
    public func usesChatTemplate(_ chat: Bool? = nil) -> Bool {
        chat == true || (chat == nil && promptTemplate == nil && chatTemplate != nil)
    }

    /// The tokens that end generation: `stopTokenIds`, else the tokenizer's end-of-text token.
    public func stopTokens(_ tokenizer: Tokenizer) -> [Int32] {
        stopTokenIds.isEmpty ? (tokenizer.eosId.map { [$0] } ?? []) : stopTokenIds
    }
}

/// A model with its tokenizer and annotations, as loaded from a folder.
public final class PretrainedModel {
    /// The network.
    public let model: TransformerModel
    /// Its tokenizer.
    public let tokenizer: Tokenizer
    /// Prompt template and reward normalisation.
    public var annotations: ModelAnnotations

    /// Bundles a model with its tokenizer.
    public init(model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations = .init()) {
        self.model = model; self.tokenizer = tokenizer; self.annotations = annotations
    }
}

/// Hugging Face GPT-2 model folders: `config.json`, `model.safetensors` and tokenizer files.
///
/// Loading accepts tensor names with or without the `transformer.` prefix, Conv1D weights in
/// their [in, out] layout (the core's own layout), and a tied `lm_head.weight` (absent, or equal
/// to `wte`). It refuses what the core cannot compute exactly: another architecture or
/// activation, an untied head, a non-default attention scaling, cross-attention.
public enum ModelFolder {
    /// File names inside a model folder.
    public static let configFile = "config.json", weightsFile = "model.safetensors"

    /// Reads and checks `config.json`.
    public static func readConfig(_ folder: URL) throws -> (ModelConfig, ModelAnnotations) {
        let url = folder.appendingPathComponent(configFile)
        let what = url.path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FormatError("\(folder.path): no config.json; expected a Hugging Face model folder (GPT-2, Llama or Qwen2)")
        }
        let c = try JSONText.object(JSONText.readFile(url, limit: 16 << 20), what)
        let type = c["model_type"] as? String ?? "gpt2"
        let config: ModelConfig
        switch type {
        case "gpt2": config = try gpt2Config(c, what)
        case "llama", "qwen2": config = try llamaConfig(c, what, Architecture(rawValue: type)!)
        default:
            throw FormatError("\(what): model_type \(type) is not supported; supported are gpt2, llama (SmolLM2, Llama 3.x) and qwen2 (Qwen2.5)")
        }
        var notes = ModelAnnotations()
        notes.promptTemplate = c["rlhf_prompt_template"] as? String
        notes.rewardGain = JSONText.double(c["rlhf_reward_gain"]).map(Float.init)
        notes.rewardBias = JSONText.double(c["rlhf_reward_bias"]).map(Float.init)
        if let s = c["rlhf_source_dtype"] {
            guard let name = s as? String, let t = SafeTensorsDType(rawValue: name), t.isFloatLoadable else {
                throw FormatError("\(what): rlhf_source_dtype must be \"F32\", \"F16\" or \"BF16\"")
            }
            notes.sourceDType = t
        }
        if let p = c["rlhf_provenance"] {
            guard p is [String: Any], let data = try? JSONSerialization.data(withJSONObject: p, options: [.sortedKeys, .withoutEscapingSlashes]) else {
                throw FormatError("\(what): rlhf_provenance must be a JSON object")
            }
            notes.provenance = String(decoding: data, as: UTF8.self)
        }
        return (config, notes)
    }

    /// A GPT-2 `config.json`, refusing what the core does not compute.
    static func gpt2Config(_ c: [String: Any], _ what: String) throws -> ModelConfig {
        let known: Set<String> = ["GPT2LMHeadModel", "GPT2Model", "GPT2ForSequenceClassification", "GPT2ForTokenClassification"]
        if let archs = c["architectures"] as? [String], let other = archs.first(where: { !known.contains($0) }) {
            throw FormatError("\(what): architecture \(other) is not supported; only GPT-2 is")
        }
        let act = c["activation_function"] as? String ?? "gelu_new"
        guard act == "gelu_new" || act == "gelu_pytorch_tanh" else {
            throw FormatError("\(what): activation_function \(act) is not supported; the core implements GPT-2's tanh GELU (gelu_new)")
        }
        if JSONText.bool(c["tie_word_embeddings"]) == false {
            throw FormatError("\(what): tie_word_embeddings is false; the core needs the LM head tied to wte")
        }
        if JSONText.bool(c["scale_attn_weights"]) == false { throw FormatError("\(what): scale_attn_weights false is not supported") }
        if JSONText.bool(c["scale_attn_by_inverse_layer_idx"]) == true { throw FormatError("\(what): scale_attn_by_inverse_layer_idx is not supported") }
        if JSONText.bool(c["add_cross_attention"]) == true { throw FormatError("\(what): cross-attention is not supported") }
        func int(_ keys: String...) throws -> Int {
            for k in keys { if let v = JSONText.int(c[k]) { return v } }
            throw FormatError("\(what): missing integer \(keys[0])")
        }
        let config = ModelConfig(nLayer: try int("n_layer", "num_hidden_layers"), nHead: try int("n_head", "num_attention_heads"),
                               nEmbd: try int("n_embd", "hidden_size"), nCtx: try int("n_positions", "n_ctx"),
                               vocabSize: try int("vocab_size"),
                               layerNormEpsilon: Float(JSONText.double(c["layer_norm_epsilon"]) ?? 1e-5))
        if let problem = config.validationError() { throw FormatError("\(what): \(problem)") }
        if let inner = JSONText.int(c["n_inner"]), inner != 4 * config.nEmbd {
            throw FormatError("\(what): n_inner \(inner) is not supported; the core uses 4 × n_embd = \(4 * config.nEmbd)")
        }
        return config
    }

    /// A Llama or Qwen2 `config.json` (transformers 4's `rope_theta`/`rope_scaling` or 5's
    /// `rope_parameters`), refusing, with the field named, anything the core does not compute.
    static func llamaConfig(_ c: [String: Any], _ what: String, _ arch: Architecture) throws -> ModelConfig {
        let known: Set<String> = arch == .llama
            ? ["LlamaForCausalLM", "LlamaModel", "LlamaForSequenceClassification"]
            : ["Qwen2ForCausalLM", "Qwen2Model", "Qwen2ForSequenceClassification"]
        if let archs = c["architectures"] as? [String], let other = archs.first(where: { !known.contains($0) }) {
            throw FormatError("\(what): architecture \(other) is not supported for model_type \(arch.rawValue)")
        }
        func int(_ key: String) throws -> Int {
            guard let v = JSONText.int(c[key]) else { throw FormatError("\(what): missing integer \(key)") }
            return v
        }
        let act = c["hidden_act"] as? String ?? "silu"
        guard act == "silu" else { throw FormatError("\(what): hidden_act \(act) is not supported; the core implements SwiGLU with silu") }
        if JSONText.bool(c["mlp_bias"]) == true { throw FormatError("\(what): mlp_bias true is not supported") }
        if arch == .llama, JSONText.bool(c["attention_bias"]) == true {
            throw FormatError("\(what): attention_bias true is not supported for llama (Qwen2's q/k/v biases are)")
        }
        if JSONText.bool(c["use_sliding_window"]) == true {
            throw FormatError("\(what): use_sliding_window true is not supported; the core computes full attention only")
        }
        if let types = c["layer_types"] as? [Any], let other = types.first(where: { ($0 as? String) != "full_attention" }) {
            throw FormatError("\(what): layer_types \(other) is not supported; the core computes full attention only")
        }
        if let tp = JSONText.int(c["pretraining_tp"]), tp != 1 { throw FormatError("\(what): pretraining_tp \(tp) is not supported") }
        // Rotary settings: transformers 5 nests them in rope_parameters, 4 keeps rope_theta and rope_scaling.
        let params = c["rope_parameters"] as? [String: Any]
        let theta = JSONText.double(params?["rope_theta"]) ?? JSONText.double(c["rope_theta"]) ?? 10000
        var scaling: RopeScaling?
        let scalingObject: [String: Any]?
        if let p = params { scalingObject = p } else if c["rope_scaling"] is NSNull || c["rope_scaling"] == nil { scalingObject = nil } else {
            guard let o = c["rope_scaling"] as? [String: Any] else { throw FormatError("\(what): rope_scaling must be an object or null") }
            scalingObject = o
        }
        if let o = scalingObject {
            let kind = (o["rope_type"] ?? o["type"]) as? String ?? "default"
            switch kind {
            case "default": break
            case "llama3":
                guard let f = JSONText.double(o["factor"]), let lo = JSONText.double(o["low_freq_factor"]),
                      let hi = JSONText.double(o["high_freq_factor"]), let old = JSONText.int(o["original_max_position_embeddings"]) else {
                    throw FormatError("\(what): rope_scaling llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
                }
                scaling = RopeScaling(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: old)
            default:
                throw FormatError("\(what): rope_scaling type \(kind) is not supported; the core implements the default rotary embedding and llama3 scaling")
            }
        }
        let heads = try int("num_attention_heads")
        let config = ModelConfig(llama: arch, nLayer: try int("num_hidden_layers"), nHead: heads,
                                 nKVHead: JSONText.int(c["num_key_value_heads"]) ?? heads, nEmbd: try int("hidden_size"),
                                 headDim: JSONText.int(c["head_dim"]), intermediateSize: try int("intermediate_size"),
                                 nCtx: try int("max_position_embeddings"), vocabSize: try int("vocab_size"),
                                 rmsNormEpsilon: Float(JSONText.double(c["rms_norm_eps"]) ?? 1e-6),
                                 ropeTheta: theta, ropeScaling: scaling,
                                 tieWordEmbeddings: JSONText.bool(c["tie_word_embeddings"]) ?? false)
        if let problem = config.validationError() { throw FormatError("\(what): \(problem)") }
        // A rotary table for every position is allocated with the model; keep it sane.
        if config.nCtx > 1 << 18 { throw FormatError("\(what): max_position_embeddings \(config.nCtx) is above the supported 262144") }
        return config
    }

    /// Loads a model folder: config, weights and tokenizer.
    public static func load(_ folder: URL) throws -> PretrainedModel {
        if holdsAdapters(folder) {
            throw FormatError("\(folder.path) holds LoRA adapters (\(PEFTAdapter.configFile)), not a model; load it over its base model (rlhf init --base BASE --adapter \(folder.lastPathComponent))")
        }
        var (config, notes) = try readConfig(folder)
        let (model, weights) = try loadWeightFiles(folder, config: config)
        if notes.sourceDType == nil { notes.sourceDType = weights.floatDType }
        let tokenizer = try Tokenizer.load(folder: folder)
        if tokenizer.count > config.vocabSize {
            throw FormatError("\(folder.path): the tokenizer has \(tokenizer.count) tokens but the model's vocab_size is \(config.vocabSize)")
        }
        return PretrainedModel(model: model, tokenizer: tokenizer, annotations: try withPrompting(notes, folder, config))
    }

    /// `notes` with the folder's chat template and stop tokens.
    static func withPrompting(_ notes: ModelAnnotations, _ folder: URL, _ config: ModelConfig) throws -> ModelAnnotations {
        var notes = notes
        notes.chatTemplate = try ChatTemplate.load(folder: folder)?.source
        notes.stopTokenIds = try stopTokenIds(folder, vocabSize: config.vocabSize)
        return notes
    }

    /// What a folder says about laying out prompts, without its weights: the config's
    /// annotations, the tokenizer, the chat template and the stop tokens.
    public static func loadPrompting(_ folder: URL) throws -> (tokenizer: Tokenizer, annotations: ModelAnnotations) {
        let (config, notes) = try readConfig(folder)
        let tokenizer = try Tokenizer.load(folder: folder)
        return (tokenizer, try withPrompting(notes, folder, config))
    }

    /// `eos_token_id` of generation_config.json, else of config.json: one id or a list.
    static func stopTokenIds(_ folder: URL, vocabSize: Int) throws -> [Int32] {
        for file in ["generation_config.json", configFile] {
            let url = folder.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let obj = try JSONText.object(JSONText.readFile(url, limit: 16 << 20), url.path)
            guard let v = obj["eos_token_id"], !(v is NSNull) else { continue }
            let raw: [Any] = (v as? [Any]) ?? [v]
            var ids: [Int32] = []
            for x in raw {
                guard let i = JSONText.int(x), i >= 0, i < vocabSize else {
                    throw FormatError("\(url.path): eos_token_id must be a token id below vocab_size \(vocabSize), or a list of them")
                }
                if !ids.contains(Int32(i)) { ids.append(Int32(i)) }
            }
            if !ids.isEmpty { return ids }
        }
        return []
    }

    /// Loads the weights of `folder` (`model.safetensors`, or the shards of
    /// `model.safetensors.index.json`) into a new model of `config`; a `score.weight` tensor makes
    /// it a scalar-head (reward or value) model.
    public static func loadWeights(_ folder: URL, config: ModelConfig) throws -> TransformerModel {
        try loadWeightFiles(folder, config: config).model
    }

    static func loadWeightFiles(_ folder: URL, config: ModelConfig) throws -> (model: TransformerModel, weights: WeightFiles) {
        let url = folder.appendingPathComponent(weightsFile)
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) && !WeightFiles.isSharded(folder) {
            if fm.fileExists(atPath: folder.appendingPathComponent("pytorch_model.bin").path) {
                throw FormatError("\(folder.path): only model.safetensors weights are supported, not pytorch_model.bin; re-save with save_pretrained(..., safe_serialization=True)")
            }
            throw FormatError("\(folder.path): no model.safetensors (or model.safetensors.index.json with its shards)")
        }
        let file = try WeightFiles.open(folder: folder)
        let what = file.path
        // Map file names to core names.
        var byName: [String: String] = [:]
        var extra: [String] = []
        let llama = config.architecture.isLlamaFamily
        // The output head when it must equal the token embedding (GPT-2, tied Llama).
        var tiedHead: String?
        for n in file.names {
            var core: String
            if llama {
                // LlamaModel checkpoints have no "model." prefix; old ones keep rotary buffers.
                if n.hasSuffix("rotary_emb.inv_freq") { continue }
                core = n.hasPrefix("model.") || n == "lm_head.weight" || n.hasPrefix("score.") ? n : "model." + n
                if core == "lm_head.weight" && config.tieWordEmbeddings { tiedHead = n; continue }
                // A reward or value model keeps no LM head.
                if core == "lm_head.weight" && file.entries["score.weight"] != nil { continue }
            } else {
                core = n.hasPrefix("transformer.") ? String(n.dropFirst("transformer.".count)) : n
                if core.hasSuffix(".attn.bias") || core.hasSuffix(".attn.masked_bias") { continue }
                if core == "lm_head.weight" { tiedHead = n; continue }
                if core == "score.weight" || core == "score.bias" { core = n }
            }
            if byName[core] != nil { throw FormatError("\(what): tensor \(core) appears twice (with and without the \(llama ? "model." : "transformer.") prefix)") }
            byName[core] = n
        }
        let scalar = byName["score.weight"] != nil
        // Every tensor the config declares is matched against the file before the model is
        // allocated: the file's sizes were checked against its length, so a config declaring a
        // huge model fails here instead of allocating it.
        let layout = ParameterLayout(config: config, scalarHead: scalar)
        var sources: [(slot: String, file: String)] = []
        for slot in layout.slots {
            guard let fileName = byName.removeValue(forKey: slot.name) else {
                if slot.name == "score.bias" { continue }   // Hugging Face's score layer has no bias
                throw FormatError("\(what): missing tensor \(slot.name)")
            }
            let e = file.entries[fileName]!
            let expected = slot.name == "score.bias" ? [1] : slot.shape
            guard e.shape == expected || (slot.name == "score.bias" && e.shape == []) else {
                throw FormatError("\(what): tensor \(fileName) has shape \(e.shape), expected \(expected) for this config")
            }
            sources.append((slot.name, fileName))
        }
        extra = byName.values.sorted()
        if !extra.isEmpty {
            throw FormatError("\(what): unexpected tensors for a \(config.architecture.rawValue) model of this config: \(extra.prefix(5).joined(separator: ", "))\(extra.count > 5 ? ", …" : "")")
        }
        let model = TransformerModel(config: config, scalarHead: scalar)
        for (slot, fileName) in sources { try file.read(fileName, into: model.tensor(slot)) }
        if let tiedHead {
            let head = try file.floats(tiedHead)
            let wte = UnsafeMutableBufferPointer(start: model.p.wte, count: config.vocabSize * config.nEmbd)
            guard head.count == wte.count, zip(head, wte).allSatisfy({ $0 == $1 }) else {
                throw FormatError(llama ? "\(what): lm_head.weight differs from model.embed_tokens.weight although tie_word_embeddings is true"
                                        : "\(what): lm_head.weight differs from wte.weight; untied output heads are not supported for GPT-2")
            }
        }
        return (model, file)
    }

    /// Writes `model` with its tokenizer as a Hugging Face GPT-2 folder that
    /// `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` load. The folder is
    /// built under a temporary name and renamed into place, replacing any folder there. With
    /// `maxShardBytes`, weights larger than that are split into shards with an index, as
    /// `save_pretrained(max_shard_size=…)` does; checkpoints inside a run are always one file.
    /// Returns the number of weight files written.
    @discardableResult
    public static func save(_ model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations = .init(), to folder: URL,
                            maxShardBytes: Int? = nil, dtype: SafeTensorsDType = .F32) throws -> Int {
        var files = 0
        try AtomicFile.replaceFolder(folder) { tmp in
            files = try writeContents(model, tokenizer: tokenizer, annotations: annotations, into: tmp, maxShardBytes: maxShardBytes, dtype: dtype)
        }
        return files
    }

    /// Removes, from a folder of checkpoints, what a killed `save` left under temporary names.
    public static func removeStaleTemporaries(in dir: URL) {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for name in items where name.hasPrefix(".") && (name.contains(".tmp-") || name.contains(".old-")) {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
        }
    }

    /// Writes everything of a model folder but its weights: config.json (with the annotations),
    /// generation_config.json, chat templates and the tokenizer files.
    static func writeDescription(_ c: ModelConfig, scalarHead: Bool, tokenizer: Tokenizer, annotations: ModelAnnotations, into folder: URL,
                                 dtype: SafeTensorsDType) throws {
        precondition(tokenizer.count <= c.vocabSize, "tokenizer larger than the model's vocabulary")
        var fields = configFields(c, scalarHead: scalarHead, tokenizer: tokenizer, dtype: dtype, stopTokenIds: annotations.stopTokenIds)
        if let pad = tokenizer.padId { fields.append("\"pad_token_id\":\(pad)") }
        if scalarHead { fields.append("\"num_labels\":1") }
        if let t = annotations.promptTemplate { fields.append("\"rlhf_prompt_template\":\(JSONText.quote(t))") }
        if let g = annotations.rewardGain { fields.append("\"rlhf_reward_gain\":\(Double(g))") }
        if let b = annotations.rewardBias { fields.append("\"rlhf_reward_bias\":\(Double(b))") }
        if let t = annotations.sourceDType { fields.append("\"rlhf_source_dtype\":\"\(t.rawValue)\"") }
        if !annotations.stopTokenIds.isEmpty {
            let ids = eosJSON(annotations.stopTokenIds, tokenizer)
            let bos = c.architecture.isLlamaFamily ? tokenizer.bosId.map { ",\"bos_token_id\":\($0)" } ?? "" : ""
            try AtomicFile.write(Data("{\"eos_token_id\":\(ids)\(bos)}\n".utf8), to: folder.appendingPathComponent("generation_config.json"))
        }
        if let t = annotations.chatTemplate {
            try AtomicFile.write(Data(t.utf8), to: folder.appendingPathComponent("chat_template.jinja"))
        }
        if !annotations.additionalChatTemplates.isEmpty {
            let dir = folder.appendingPathComponent("additional_chat_templates")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (name, t) in annotations.additionalChatTemplates.sorted(by: { $0.key < $1.key }) {
                precondition(!name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }, "a template name is a plain word")
                try AtomicFile.write(Data(t.utf8), to: dir.appendingPathComponent(name + ".jinja"))
            }
        }
        if let p = annotations.provenance { fields.append("\"rlhf_provenance\":\(p)") }
        try AtomicFile.write(Data(("{\n  " + fields.joined(separator: ",\n  ") + "\n}\n").utf8), to: folder.appendingPathComponent(configFile))
        try tokenizer.save(to: folder, maxLength: c.nCtx)
    }

    /// Writes config.json, model.safetensors (or shards and their index) and the tokenizer files
    /// into an existing folder; returns the number of weight files.
    @discardableResult
    static func writeContents(_ model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations, into folder: URL,
                              maxShardBytes: Int? = nil, dtype: SafeTensorsDType = .F32) throws -> Int {
        precondition(dtype.isFloatLoadable, "weights are written as F32, F16 or BF16")
        guard model.frozenDType == .f32 else {
            throw FormatError("this model holds its projections in bfloat16 (--frozen-dtype bf16) and cannot be saved as full weights; save its adapters")
        }
        let c = model.config
        try writeDescription(c, scalarHead: model.hasScalarHead, tokenizer: tokenizer, annotations: annotations, into: folder, dtype: dtype)
        let tensors = model.layout.slots.map { slot -> SafeTensorsOutput in
            let name = slot.name.hasPrefix("score.") || c.architecture.isLlamaFamily ? slot.name : "transformer." + slot.name
            return SafeTensorsOutput(name: name, shape: slot.shape, data: UnsafeBufferPointer(model.tensor(slot.name)), dtype: dtype)
        }
        let shards = WeightFiles.shards(tensors, maxBytes: maxShardBytes)
        if shards.count == 1 {
            try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: folder.appendingPathComponent(weightsFile))
        } else {
            try WeightFiles.writeSharded(shards, into: folder)
        }
        return shards.count
    }

    /// `eos_token_id` as config.json writes it: the stop tokens (one id, or a list), else the
    /// tokenizer's end-of-text token, else null.
    static func eosJSON(_ stops: [Int32], _ tokenizer: Tokenizer) -> String {
        if stops.count > 1 { return "[" + stops.map(String.init).joined(separator: ",") + "]" }
        return (stops.first ?? tokenizer.eosId).map(String.init) ?? "null"
    }

    /// The architecture's `config.json` fields (without this project's `rlhf_*` annotations).
    static func configFields(_ c: ModelConfig, scalarHead: Bool, tokenizer: Tokenizer, dtype: SafeTensorsDType, stopTokenIds: [Int32]) -> [String] {
        let eos = eosJSON(stopTokenIds, tokenizer)
        let dtypeName = "\"\(dtype == .BF16 ? "bfloat16" : dtype == .F16 ? "float16" : "float32")\""
        guard c.architecture.isLlamaFamily else {
            return [
                "\"architectures\":[\"\(scalarHead ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel")\"]",
                "\"model_type\":\"gpt2\"", "\"activation_function\":\"gelu_new\"",
                "\"n_layer\":\(c.nLayer)", "\"n_head\":\(c.nHead)", "\"n_embd\":\(c.nEmbd)",
                "\"n_positions\":\(c.nCtx)", "\"n_ctx\":\(c.nCtx)", "\"n_inner\":null", "\"vocab_size\":\(c.vocabSize)",
                "\"layer_norm_epsilon\":\(Double(c.layerNormEpsilon))",
                "\"resid_pdrop\":0.0", "\"embd_pdrop\":0.0", "\"attn_pdrop\":0.0", "\"summary_first_dropout\":0.0",
                "\"initializer_range\":0.02", "\"scale_attn_weights\":true", "\"tie_word_embeddings\":true", "\"use_cache\":true",
                "\"bos_token_id\":\(tokenizer.eosId.map(String.init) ?? "null")", "\"eos_token_id\":\(eos)", "\"torch_dtype\":\(dtypeName)",
            ]
        }
        let qwen = c.architecture == .qwen2
        let family = qwen ? "Qwen2" : "Llama"
        var f = [
            "\"architectures\":[\"\(family)\(scalarHead ? "ForSequenceClassification" : "ForCausalLM")\"]",
            "\"model_type\":\"\(c.architecture.rawValue)\"", "\"hidden_act\":\"silu\"",
            "\"hidden_size\":\(c.nEmbd)", "\"intermediate_size\":\(c.intermediateSize)",
            "\"num_hidden_layers\":\(c.nLayer)", "\"num_attention_heads\":\(c.nHead)", "\"num_key_value_heads\":\(c.nKVHead)",
            "\"head_dim\":\(c.headDim)", "\"max_position_embeddings\":\(c.nCtx)", "\"vocab_size\":\(c.vocabSize)",
            "\"rms_norm_eps\":\(Double(c.layerNormEpsilon))", "\"rope_theta\":\(c.ropeTheta)",
            "\"tie_word_embeddings\":\(c.tieWordEmbeddings)", "\"attention_dropout\":0.0", "\"initializer_range\":0.02",
            "\"use_cache\":true", "\"torch_dtype\":\(dtypeName)", "\"dtype\":\(dtypeName)",
            "\"bos_token_id\":\(tokenizer.bosId.map(String.init) ?? "null")", "\"eos_token_id\":\(eos)",
        ]
        if let s = c.ropeScaling {
            f.append("\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":\(s.factor),\"low_freq_factor\":\(s.lowFreqFactor),\"high_freq_factor\":\(s.highFreqFactor),\"original_max_position_embeddings\":\(s.originalMaxPositions)}")
        } else {
            f.append("\"rope_scaling\":null")
        }
        if qwen {
            f += ["\"use_sliding_window\":false", "\"sliding_window\":null", "\"max_window_layers\":\(c.nLayer)"]
        } else {
            f += ["\"attention_bias\":false", "\"mlp_bias\":false", "\"pretraining_tp\":1"]
        }
        return f
    }
}
