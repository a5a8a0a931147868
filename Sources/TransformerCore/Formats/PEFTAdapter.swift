import Foundation

/// LoRA adapters as PEFT saves them: a folder with `adapter_config.json` and
/// `adapter_model.safetensors` (`base_model.model.MODULE.lora_A.weight` / `lora_B.weight`), which
/// `PeftModel.from_pretrained(base, folder)` loads.
public enum PEFTAdapter {
    public static let configFile = "adapter_config.json", weightsFile = "adapter_model.safetensors"

    /// Reads a PEFT LoRA folder for a model of `config`. A sequence-classification adapter whose
    /// `modules_to_save` is the scalar head (`score`) gives adapters with their own head, from
    /// `base_model.model.score.weight` (and `.bias`, which this project's heads have; zero when
    /// absent). Refused, with the field named: another PEFT method, DoRA, rsLoRA, per-module
    /// ranks or alphas, adapted biases, a subset of layers, regex targets, other trained modules,
    /// and tensors that are missing, extra or of the wrong shape.
    public static func load(_ folder: URL, config: ModelConfig) throws -> LoRAAdapters {
        let url = folder.appendingPathComponent(configFile)
        let what = url.path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FormatError("\(folder.path): no \(configFile); expected a PEFT LoRA adapter folder")
        }
        let c = try JSONText.object(JSONText.readFile(url, limit: 1 << 20), what)
        func refuse(_ m: String) -> FormatError { FormatError("\(what): \(m)") }
        guard (c["peft_type"] as? String)?.uppercased() == "LORA" else {
            throw refuse("peft_type \(c["peft_type"] ?? "missing") is not supported; only LORA adapters are")
        }
        guard let r = JSONText.int(c["r"]), r >= 1, r <= 4096 else { throw refuse("r must be a rank from 1 to 4096") }
        guard let alpha = JSONText.double(c["lora_alpha"]), alpha > 0, alpha.isFinite else { throw refuse("lora_alpha must be a positive number") }
        for (key, unsupported) in [("use_dora", "DoRA"), ("use_rslora", "rsLoRA scaling"), ("lora_bias", "LoRA biases")]
        where JSONText.bool(c[key]) == true {
            throw refuse("\(key) is true: \(unsupported) is not supported")
        }
        if let b = c["bias"] as? String, b != "none" { throw refuse("bias \"\(b)\" is not supported (only \"none\")") }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let d = c[key] as? [String: Any], !d.isEmpty { throw refuse("\(key) (per-module ranks or alphas) is not supported") }
        }
        for key in ["layers_to_transform", "exclude_modules", "layer_replication", "target_parameters", "trainable_token_indices"] {
            if let v = c[key], !(v is NSNull) { throw refuse("\(key) is not supported") }
        }
        // PEFT saves a sequence classifier's head through modules_to_save (it lists both names
        // transformers uses for one; these models call theirs `score`).
        var scalarHead = false
        if let v = c["modules_to_save"], !(v is NSNull) {
            guard let list = v as? [String], list.contains("score"), list.allSatisfy({ $0 == "score" || $0 == "classifier" }) else {
                throw refuse("modules_to_save is supported only as the scalar head [\"score\"]")
            }
            scalarHead = true
        }
        if c["target_modules"] is String { throw refuse("target_modules as a regular expression is not supported; give a list of module names") }
        guard let targets = c["target_modules"] as? [String], !targets.isEmpty else {
            throw refuse("target_modules must be a non-empty list of module names")
        }
        let dropout = JSONText.double(c["lora_dropout"]) ?? 0
        guard dropout >= 0 && dropout < 1 else { throw refuse("lora_dropout must be in [0, 1)") }
        // The file first: every matrix the config declares must be in it, so its size bounds
        // what may be allocated (a config declaring a huge rank is refused, not allocated).
        let file = try SafeTensorsFile(url: folder.appendingPathComponent(weightsFile))
        let inFile = file.entries.values.reduce(0) { $0 &+ $1.shape.reduce(1, &*) }
        let lora: LoRAAdapters
        do {
            lora = try LoRAAdapters(
                config: LoRAConfig(rank: r, alpha: Float(alpha), targets: targets, dropout: Float(dropout)), model: config,
                scalarHead: scalarHead, maxFloats: inFile + config.nEmbd + 1)
        } catch let e as FormatError {
            throw refuse(e.description)
        }
        let expected = lora.tensors
        let names = Set(expected.map(\.name))
        // PEFT's file may name tensors with the adapter name ("….lora_A.default.weight") in old versions.
        func fileName(_ n: String) -> String? {
            if file.entries[n] != nil { return n }
            let alt = n.replacingOccurrences(of: ".weight", with: ".default.weight")
            return file.entries[alt] != nil ? alt : nil
        }
        for t in expected {
            guard let n = fileName(t.name) else { throw FormatError("\(file.url.path): no tensor \(t.name)") }
            guard file.entries[n]!.shape == t.shape else {
                throw FormatError("\(file.url.path): \(n) has shape \(file.entries[n]!.shape), expected \(t.shape) for this model and r = \(r)")
            }
            try file.read(n, into: UnsafeMutableBufferPointer(start: lora.parameters.pointer + t.offset, count: t.shape[0] * t.shape[1]))
        }
        var headNames: Set<String> = []
        if let head = lora.head {
            let c = config.nEmbd
            let w = headWeightName
            guard let e = file.entries[w] else { throw FormatError("\(file.url.path): no tensor \(w) (the scalar head named in modules_to_save)") }
            guard e.shape == [1, c] else { throw FormatError("\(file.url.path): \(w) has shape \(e.shape), expected [1, \(c)]") }
            try file.read(w, into: UnsafeMutableBufferPointer(rebasing: head[0..<c]))
            head[c] = 0
            if let b = file.entries[headBiasName] {
                guard b.shape == [1] || b.shape == [] else {
                    throw FormatError("\(file.url.path): \(headBiasName) has shape \(b.shape), expected [1]")
                }
                try file.read(headBiasName, into: UnsafeMutableBufferPointer(rebasing: head[c...]))
            }
            headNames = [w, headBiasName]
        }
        for n in file.names
        where !names.contains(n) && !headNames.contains(n) && !names.contains(n.replacingOccurrences(of: ".default.weight", with: ".weight")) {
            throw FormatError("\(file.url.path): tensor \(n) is not a LoRA matrix of the targets \(targets.joined(separator: ", "))")
        }
        return lora
    }

    /// The names of a scalar head in PEFT's file (saved through `modules_to_save`).
    static let headWeightName = "base_model.model.score.weight", headBiasName = "base_model.model.score.bias"

    /// Writes `lora` as a PEFT folder (replacing `folder`, via a temporary folder): its config
    /// (task `CAUSAL_LM`, or `SEQ_CLS` for adapters with a head) names `baseModel` as its base.
    public static func save(_ lora: LoRAAdapters, to folder: URL, baseModel: String) throws {
        try AtomicFile.replaceFolder(folder) { tmp in try writeContents(lora, into: tmp, baseModel: baseModel) }
    }

    /// Writes the adapter config and weights of `lora` into an existing folder.
    static func writeContents(_ lora: LoRAAdapters, into folder: URL, baseModel: String) throws {
        let cfg = lora.config
        let taskType = lora.head == nil ? "CAUSAL_LM" : "SEQ_CLS"
        let fields: [(String, String)] = [
            ("alpha_pattern", "{}"), ("base_model_name_or_path", JSONText.quote(baseModel)), ("bias", "\"none\""),
            ("fan_in_fan_out", lora.modelConfig.architecture.isLlamaFamily ? "false" : "true"), ("inference_mode", "true"),
            ("init_lora_weights", "true"), ("layers_to_transform", "null"), ("lora_alpha", "\(Double(cfg.alpha))"),
            ("lora_dropout", "\(Double(cfg.dropout))"),
            ("modules_to_save", lora.head == nil ? "null" : "[\"score\"]"), ("peft_type", "\"LORA\""), ("r", "\(cfg.rank)"), ("rank_pattern", "{}"),
            ("target_modules", "[" + cfg.targets.map(JSONText.quote).joined(separator: ", ") + "]"), ("task_type", JSONText.quote(taskType)),
            ("use_dora", "false"), ("use_rslora", "false"),
        ]
        let json = "{\n" + fields.map { "  \(JSONText.quote($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n"
        try AtomicFile.write(Data(json.utf8), to: folder.appendingPathComponent(configFile))
        var outs = lora.tensors.map { t in
            SafeTensorsOutput(
                name: t.name, shape: t.shape, data: UnsafeBufferPointer(start: lora.parameters.pointer + t.offset, count: t.shape[0] * t.shape[1]))
        }
        if let h = lora.head {
            let c = lora.modelConfig.nEmbd
            outs.append(SafeTensorsOutput(name: headWeightName, shape: [1, c], data: UnsafeBufferPointer(rebasing: h[0..<c])))
            outs.append(SafeTensorsOutput(name: headBiasName, shape: [1], data: UnsafeBufferPointer(rebasing: h[c...])))
        }
        try SafeTensorsWriter.write(outs, metadata: ["format": "pt"], to: folder.appendingPathComponent(weightsFile))
    }
}
