import Foundation

/// Saving a model folder.
extension ModelFolder {
    /// Writes `model` with its tokenizer as a Hugging Face folder that transformers'
    /// `from_pretrained` loads as GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM (by the
    /// model's architecture; …ForSequenceClassification with a scalar head), and
    /// `AutoTokenizer.from_pretrained` its tokenizer. The folder is built under a temporary name
    /// and renamed into place, replacing any folder there. With `maxShardBytes`, weights larger
    /// than that are split into shards with an index, as `save_pretrained(max_shard_size=…)`
    /// does; checkpoints inside a run are always one file. Returns the number of weight files
    /// written.
    @discardableResult
    public static func save(
        _ model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations = .init(), to folder: URL,
        maxShardBytes: Int? = nil, dtype: SafeTensorsDType = .F32
    ) throws -> Int {
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
    static func writeDescription(
        _ c: ModelConfig, scalarHead: Bool, tokenizer: Tokenizer, annotations: ModelAnnotations, into folder: URL,
        dtype: SafeTensorsDType
    ) throws {
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
                precondition(
                    !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }, "a template name is a plain word")
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
    static func writeContents(
        _ model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations, into folder: URL,
        maxShardBytes: Int? = nil, dtype: SafeTensorsDType = .F32
    ) throws -> Int {
        precondition(dtype.isFloatLoadable, "weights are written as F32, F16 or BF16")
        guard model.frozenDType == .f32 else {
            throw FormatError(
                "this model holds its projections in bfloat16 (--frozen-dtype bf16) and cannot be saved as full weights; save its adapters")
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
}
