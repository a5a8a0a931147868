import Foundation

/// `config.json`: reading and checking it, the stop tokens, and the fields written to it.
extension ModelFolder {
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
            guard p is [String: Any], let data = try? JSONSerialization.data(withJSONObject: p, options: [.sortedKeys, .withoutEscapingSlashes])
            else {
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
        if JSONText.bool(c["scale_attn_by_inverse_layer_idx"]) == true {
            throw FormatError("\(what): scale_attn_by_inverse_layer_idx is not supported")
        }
        if JSONText.bool(c["add_cross_attention"]) == true { throw FormatError("\(what): cross-attention is not supported") }
        func int(_ keys: String...) throws -> Int {
            for k in keys { if let v = JSONText.int(c[k]) { return v } }
            throw FormatError("\(what): missing integer \(keys[0])")
        }
        let config = ModelConfig(
            nLayer: try int("n_layer", "num_hidden_layers"), nHead: try int("n_head", "num_attention_heads"),
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
        let known: Set<String> =
            arch == .llama
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
        if let p = params {
            scalingObject = p
        } else if c["rope_scaling"] is NSNull || c["rope_scaling"] == nil {
            scalingObject = nil
        } else {
            guard let o = c["rope_scaling"] as? [String: Any] else { throw FormatError("\(what): rope_scaling must be an object or null") }
            scalingObject = o
        }
        if let o = scalingObject {
            let kind = (o["rope_type"] ?? o["type"]) as? String ?? "default"
            switch kind {
            case "default": break
            case "llama3":
                guard let f = JSONText.double(o["factor"]), let lo = JSONText.double(o["low_freq_factor"]),
                    let hi = JSONText.double(o["high_freq_factor"]), let old = JSONText.int(o["original_max_position_embeddings"])
                else {
                    throw FormatError(
                        "\(what): rope_scaling llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
                }
                scaling = RopeScaling(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: old)
            default:
                throw FormatError(
                    "\(what): rope_scaling type \(kind) is not supported; the core implements the default rotary embedding and llama3 scaling")
            }
        }
        let heads = try int("num_attention_heads")
        let config = ModelConfig(
            llama: arch, nLayer: try int("num_hidden_layers"), nHead: heads,
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
            f.append(
                "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":\(s.factor),\"low_freq_factor\":\(s.lowFreqFactor),\"high_freq_factor\":\(s.highFreqFactor),\"original_max_position_embeddings\":\(s.originalMaxPositions)}"
            )
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
