import Foundation

/// LoRA checkpoints inside a run: a folder with what a model folder describes (config.json with
/// the annotations, the tokenizer files, the chat template) and, instead of weights, PEFT's
/// `adapter_config.json` and `adapter_model.safetensors`. The weights they adapt are another
/// checkpoint, which the run database names; a checkpoint is loaded from its chain of folders,
/// full weights first.
extension ModelFolder {
    /// Whether `folder` holds LoRA adapters rather than weights.
    public static func holdsAdapters(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: folder.appendingPathComponent(PEFTAdapter.configFile).path)
            && !fm.fileExists(atPath: folder.appendingPathComponent(weightsFile).path) && !WeightFiles.isSharded(folder)
    }

    /// Loads a checkpoint from its chain (as `RunStore.verifiedChain` gives it): the full
    /// weights of the first folder, then each adapter folder's adapters merged into them in
    /// turn (a head of their own replaces the model's, making a reward or value model). The
    /// tokenizer and annotations are the last folder's.
    public static func load(chain: [URL]) throws -> PretrainedModel {
        guard let first = chain.first else { throw FormatError("no checkpoint folder to load") }
        var loaded = try load(first)
        for folder in chain.dropFirst() {
            let (model, lora, tokenizer, notes) = try adapterFolder(folder, over: loaded)
            lora.merge(into: model)
            loaded = PretrainedModel(model: model, tokenizer: tokenizer, annotations: notes)
        }
        return loaded
    }

    /// The adapters of `folder`, not merged, for a model `base` they adapt, with the folder's
    /// tokenizer and annotations; `model` is `base`'s network, or a scalar-head copy of it
    /// holding the adapters' head when they have one and it has not.
    static func adapterFolder(_ folder: URL, over base: PretrainedModel) throws
        -> (model: TransformerModel, lora: LoRAAdapters, tokenizer: Tokenizer, annotations: ModelAnnotations)
    {
        var (config, notes) = try readConfig(folder)
        guard config == base.model.config else {
            throw FormatError("\(folder.path): its config.json describes another model than the one its adapters are registered over")
        }
        let lora = try PEFTAdapter.load(folder, config: config)
        var model = base.model
        if let head = lora.head {
            if !model.hasScalarHead {
                model = TransformerModel(config: config, scalarHead: true)
                model.copyParameters(from: base.model)
            }
            let c = config.nEmbd
            model.tensor("score.weight").baseAddress!.update(from: head.baseAddress!, count: c)
            model.tensor("score.bias")[0] = head[c]
        }
        let tokenizer = try Tokenizer.load(folder: folder)
        guard tokenizer.count <= config.vocabSize else {
            throw FormatError("\(folder.path): the tokenizer has \(tokenizer.count) tokens but the model's vocab_size is \(config.vocabSize)")
        }
        if notes.sourceDType == nil { notes.sourceDType = base.annotations.sourceDType }
        return (model, lora, tokenizer, try withPrompting(notes, folder, config))
    }

    /// Writes `lora` as an adapter checkpoint (replacing `folder`, via a temporary folder): the
    /// description of the adapted model (its config, with a scalar head when the adapters have
    /// one; the tokenizer; the annotations) and the PEFT adapter files naming `baseModel`.
    public static func saveAdapters(_ lora: LoRAAdapters, tokenizer: Tokenizer, annotations: ModelAnnotations, baseModel: String, to folder: URL)
        throws
    {
        try AtomicFile.replaceFolder(folder) { tmp in
            try writeDescription(
                lora.modelConfig, scalarHead: lora.head != nil, tokenizer: tokenizer, annotations: annotations, into: tmp, dtype: .F32)
            try PEFTAdapter.writeContents(lora, into: tmp, baseModel: baseModel)
        }
    }

    /// Saves what a trainer trained as a checkpoint folder: the adapters (naming the folder of
    /// the checkpoint they adapt, `baseFolder`, as their base) when the model has them, else
    /// every weight. Returns the file whose SHA-256 fingerprints the checkpoint.
    public static func saveTrained(
        _ model: TransformerModel, tokenizer: Tokenizer, annotations: ModelAnnotations, baseFolder: String,
        to folder: URL
    ) throws -> URL {
        if let lora = model.lora {
            try saveAdapters(
                lora, tokenizer: tokenizer, annotations: annotations, baseModel: "../" + URL(fileURLWithPath: baseFolder).lastPathComponent,
                to: folder)
            return folder.appendingPathComponent(PEFTAdapter.weightsFile)
        }
        try save(model, tokenizer: tokenizer, annotations: annotations, to: folder)
        return folder.appendingPathComponent(weightsFile)
    }
}
