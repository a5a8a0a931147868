import Foundation
import RunStore
import StageKit
import TransformerCore

/// `rlhf export`: a model of a run as a Hugging Face model folder.
enum ExportCommand: Command {
    static let name = "export"
    static let summary = "Write a model of a run as a Hugging Face model folder"
    static let help = """
        Usage: rlhf export [--run NAME] [--model policy|reward|value|base|ID] [--dtype auto|f32|bf16|f16]
                           [--max-shard-size SIZE] [--no-model-card] -o DIR

        Writes the run's latest policy (the default), reward model, value model, base model, or the
        model with that id, as a Hugging Face model folder: config.json, model.safetensors and the
        tokenizer files. The policy loads with transformers' AutoModelForCausalLM.from_pretrained
        (GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM) and its tokenizer with
        AutoTokenizer.from_pretrained; a reward or value model is written for
        AutoModelForSequenceClassification (num_labels 1), its normalisation in config.json
        (rlhf_reward_gain, rlhf_reward_bias). The checkpoint's hash is checked first. DIR is replaced.

        chat_template.jinja lays a prompt out as the run did: the model's own chat template when the
        run's prompts went through it, otherwise a template written for the run's prompt template
        (or the raw prompt), so that transformers' apply_chat_template([{"role": "user", "content":
        p}], add_generation_prompt=True) gives the ids rlhf generated from. A model's own template
        that the run did not use is kept as additional_chat_templates/original.jinja. config.json's
        rlhf_provenance names the run, the model id and role, its parent, and the stage, stage run,
        step, checkpoint and SHA-256 it came from.

        The weights are written in the float type the run's base model was published in (bf16 in,
        bf16 out; --dtype auto, the default), or as --dtype says; F16 and BF16 are rounded to nearest
        even from the F32 the run trains in. config.json's torch_dtype says which.

        Weights larger than --max-shard-size (default 5GB, as transformers' save_pretrained) are
        split into model-0000i-of-0000n.safetensors shards with a model.safetensors.index.json.
        SIZE is bytes, or a number with KB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024).

        README.md is a model card as the Hugging Face Hub reads it, so the folder is ready to upload:
        YAML front matter with base_model (the Hub repository the run's base model was pulled from,
        when it was), library_name (transformers, or peft with --adapter), tags (rlhf and the stages
        that made the model: sft, ppo, dpo, grpo, reward-model) and pipeline_tag (text-generation,
        or text-classification for a reward or value model); then the method (each stage from the
        base model to this one), the run's data (prompts, completions, rankings, preference pairs)
        and the last value of each metric the model's stage logged. --no-model-card leaves it out.

        With --adapter, a policy trained with --lora-rank is written as its LoRA adapters, a PEFT
        folder (adapter_config.json and adapter_model.safetensors with PEFT's tensor names) that
        PeftModel.from_pretrained(base, DIR) loads over the checkpoint they adapt, normally the run's
        base model (checkpoints/base, itself a Hugging Face folder). adapter_config.json names that
        folder as base_model_name_or_path (its Hub name when the run pulled it from the Hub), or
        --base-name NAME.

        Options:
          --run NAME           the run (default: default)
          --model WHICH        policy, reward, value, base, reference or a model id (default: policy)
          --dtype T            auto, f32, bf16 or f16 (default: auto)
          --max-shard-size S   largest weight file (default 5GB)
          --adapter            write LoRA adapters as a PEFT folder instead of merged weights
          --base-name NAME     base_model_name_or_path for --adapter (default: the base's Hub name when it
                               came from the Hub, else the base folder's path)
          --no-model-card      write no README.md
          -o DIR               the folder to write (replaced)
        """

    /// Parses a size such as 5GB, 500MB, 2GiB or 1000000 (bytes).
    static func parseSize(_ s: String) throws -> Int {
        let text = s.trimmingCharacters(in: .whitespaces)
        let number = text.prefix { $0.isNumber || $0 == "." }
        let unit = text.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        let scale: [String: Double] = ["": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824]
        guard let m = scale[unit], let v = Double(number), v * m >= 1, v * m < 1e15 else {
            throw UsageError("--max-shard-size expects a size such as 5GB, 500MB or 2GiB, got '\(s)'")
        }
        return Int(v * m)
    }

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args, options: ["--run", "--model", "-o", "--max-shard-size", "--dtype", "--base-name"], flags: ["--adapter", "--no-model-card"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let out = a.string("-o") else { throw UsageError("-o DIR is required") }
        let maxShard = try parseSize(a.string("--max-shard-size") ?? "5GB")
        let dtypes: [String: SafeTensorsDType] = ["f32": .F32, "bf16": .BF16, "f16": .F16]
        let dtypeName = (a.string("--dtype") ?? "auto").lowercased()
        guard dtypeName == "auto" || dtypes[dtypeName] != nil else { throw UsageError("--dtype must be auto, f32, bf16 or f16, got '\(dtypeName)'") }
        let store = try openRun(a)
        let which = a.string("--model") ?? "policy"
        let record: ModelRecord
        if let id = Int64(which) {
            guard let m = try store.model(id: id) else { throw RuntimeError("the run has no model #\(id)") }
            record = m
        } else {
            guard let role = ModelRole(rawValue: which) else {
                throw UsageError("--model must be policy, reward, value, base, reference or an id, got '\(which)'")
            }
            guard let m = try store.latestModel(role: role) else { throw RuntimeError("the run has no \(role.rawValue) model") }
            record = m
        }
        if a.flag("--adapter") {
            try exportAdapter(record, store: store, to: URL(fileURLWithPath: out), baseName: a.string("--base-name"))
            if !a.flag("--no-model-card") { try writeModelCard(record, store: store, to: URL(fileURLWithPath: out), adapter: true) }
            return
        }
        if a.string("--base-name") != nil { throw UsageError("--base-name goes with --adapter") }
        let model = try store.loadModel(record)
        var dtype = dtypes[dtypeName] ?? .F32
        if dtypeName == "auto", let base = try store.latestModel(role: .base) {
            dtype = try ModelFolder.readConfig(store.checkpointFolder(base)).1.sourceDType ?? .F32
        }
        var notes = model.annotations
        notes.sourceDType = dtype
        // The template the model was registered with, when its folder has none (as train-reward
        // and labels export read it).
        if notes.promptTemplate == nil { notes.promptTemplate = record.promptTemplate }
        // The chat template lays a prompt out as this run did, so that apply_chat_template in
        // transformers gives the ids rlhf generated from; a model's own template, when the run
        // laid prompts out another way, is kept by name.
        let laidOut =
            notes.usesChatTemplate()
            ? "the model's chat template" : notes.promptTemplate.map { "the prompt template \(JSONText.quote($0))" } ?? "the raw prompt"
        if !notes.usesChatTemplate() {
            if let own = notes.chatTemplate { notes.additionalChatTemplates["original"] = own }
            notes.chatTemplate = notes.exportedChatTemplate(model.tokenizer)
        }
        let stage = try record.stageRunId.flatMap { id in try store.stageRuns().first { $0.id == id }?.stage }
        notes.provenance = jsonLine([
            ("run", JSONText.quote(store.folder.lastPathComponent)), ("model_id", "\(record.id)"),
            ("role", JSONText.quote(record.role.rawValue)), ("parent_id", record.parentId.map { "\($0)" } ?? "null"),
            ("stage", stage.map(JSONText.quote) ?? "null"), ("stage_run_id", record.stageRunId.map { "\($0)" } ?? "null"),
            ("step", record.step.map { "\($0)" } ?? "null"), ("checkpoint", JSONText.quote(record.path)),
            ("sha256", JSONText.quote(record.sha256)),
        ])
        let shards = try ModelFolder.save(
            model.model, tokenizer: model.tokenizer, annotations: notes, to: URL(fileURLWithPath: out),
            maxShardBytes: maxShard, dtype: dtype)
        print(
            "wrote the \(record.role.rawValue) model #\(record.id) (\(record.path)) to \(out) as \(dtype.rawValue)"
                + (shards > 1 ? " in \(shards) shards" : ""))
        if !a.flag("--no-model-card") { try writeModelCard(record, store: store, to: URL(fileURLWithPath: out), adapter: false) }
        print(
            "  chat_template.jinja lays prompts out with \(laidOut), as this run did"
                + (notes.additionalChatTemplates["original"] != nil
                    ? "; the model's own template is kept as additional_chat_templates/original.jinja" : ""))
    }

    /// Writes README.md, the model card, into the exported folder.
    static func writeModelCard(_ record: ModelRecord, store: RunStore, to out: URL, adapter: Bool) throws {
        try AtomicFile.write(
            Data(ModelCard.text(for: record, store: store, folder: out, adapter: adapter).utf8), to: out.appendingPathComponent("README.md"))
        print("  README.md is a model card for the Hugging Face Hub (base model, method, the run's figures)")
    }

    /// `--adapter`: a policy's LoRA adapters as a PEFT folder over the run's checkpoint they adapt.
    static func exportAdapter(_ record: ModelRecord, store: RunStore, to out: URL, baseName: String?) throws {
        guard let baseId = record.baseId, let base = try store.model(id: baseId) else {
            throw RuntimeError("model #\(record.id) holds full weights (it was trained without --lora-rank); export it without --adapter")
        }
        guard base.baseId == nil else {
            throw RuntimeError(
                "model #\(record.id)'s adapters stack on other adapters (model #\(base.id)); PEFT takes one adapter over full weights, so export it merged, without --adapter"
            )
        }
        let chain = try store.verifiedChain(record)
        let baseConfig = try ModelFolder.readConfig(chain[0]).0
        let lora = try PEFTAdapter.load(chain[1], config: baseConfig)
        guard lora.head == nil else {
            throw RuntimeError(
                "model #\(record.id) is a \(record.role.rawValue) model: its adapters carry a scalar head with a bias and a normalisation that transformers' sequence classifiers lack; export it merged, without --adapter"
            )
        }
        // The Hub name when the adapted weights are the run's base model as pulled from the Hub.
        let runBase = try store.latestModel(role: .base)
        let origin = try runBase.flatMap { $0.path == base.path && $0.sha256 == base.sha256 ? try store.modelOrigin(id: $0.id) : nil }
        let name = baseName ?? origin?.repo ?? chain[0].standardizedFileURL.path
        try PEFTAdapter.save(lora, to: out, baseModel: name)
        print(
            "wrote the LoRA adapters of the \(record.role.rawValue) model #\(record.id) (r=\(lora.config.rank), alpha \(lora.config.alpha), \(lora.config.targets.joined(separator: ","))) to \(out.path)"
        )
        print(
            "  they adapt model #\(base.id), the \(base.role.rawValue) checkpoint at \(chain[0].path) (base_model_name_or_path \(JSONText.quote(name)));"
        )
        print("  load with PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), \(JSONText.quote(out.path)))")
    }
}
