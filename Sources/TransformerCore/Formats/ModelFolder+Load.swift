import Foundation

/// Loading a model folder: config, weights, tokenizer and prompting.
extension ModelFolder {
    /// Loads a model folder: config, weights and tokenizer.
    public static func load(_ folder: URL) throws -> PretrainedModel {
        if holdsAdapters(folder) {
            throw FormatError(
                "\(folder.path) holds LoRA adapters (\(PEFTAdapter.configFile)), not a model; load it over its base model (rlhf init --base BASE --adapter \(folder.lastPathComponent))"
            )
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

    /// Loads the weights of `folder` (`model.safetensors`, or the shards of
    /// `model.safetensors.index.json`) into a new model of `config`; a `score.weight` tensor makes
    /// it a scalar-head (reward or value) model.
    public static func loadWeights(_ folder: URL, config: ModelConfig) throws -> TransformerModel {
        try loadWeightFiles(folder, config: config).model
    }

    /// `loadWeights`, with the weight files it read (whose float type `load` records as the
    /// source dtype).
    static func loadWeightFiles(_ folder: URL, config: ModelConfig) throws -> (model: TransformerModel, weights: WeightFiles) {
        let url = folder.appendingPathComponent(weightsFile)
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) && !WeightFiles.isSharded(folder) {
            if fm.fileExists(atPath: folder.appendingPathComponent("pytorch_model.bin").path) {
                throw FormatError(
                    "\(folder.path): only model.safetensors weights are supported, not pytorch_model.bin; re-save with save_pretrained(..., safe_serialization=True)"
                )
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
            if byName[core] != nil {
                throw FormatError("\(what): tensor \(core) appears twice (with and without the \(llama ? "model." : "transformer.") prefix)")
            }
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
                if slot.name == "score.bias" { continue } // Hugging Face's score layer has no bias
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
            throw FormatError(
                "\(what): unexpected tensors for a \(config.architecture.rawValue) model of this config: \(extra.prefix(5).joined(separator: ", "))\(extra.count > 5 ? ", …" : "")"
            )
        }
        let model = TransformerModel(config: config, scalarHead: scalar)
        for (slot, fileName) in sources { try file.read(fileName, into: model.tensor(slot)) }
        if let tiedHead {
            let head = try file.floats(tiedHead)
            let wte = UnsafeMutableBufferPointer(start: model.p.wte, count: config.vocabSize * config.nEmbd)
            guard head.count == wte.count, zip(head, wte).allSatisfy({ $0 == $1 }) else {
                throw FormatError(
                    llama
                        ? "\(what): lm_head.weight differs from model.embed_tokens.weight although tie_word_embeddings is true"
                        : "\(what): lm_head.weight differs from wte.weight; untied output heads are not supported for GPT-2")
            }
        }
        return (model, file)
    }
}
