import Foundation
import RunStore
import TransformerCore

/// `rlhf init`: creates a run with its base model registered as policy and reference.
enum InitCommand: Command {
    static let name = "init"
    static let summary = "Create a run from a base model"
    static let help = """
        Usage: rlhf init [--run NAME] --base SOURCE [--adapter DIR] [--force] [--seed S]

        Creates runs/NAME/ (NAME defaults to 'default'; a path with a slash also works) holding
        run.sqlite and checkpoints/. The base model is copied into checkpoints/base as a Hugging Face
        folder (F16/BF16 weights become F32; its chat template and stop tokens are kept) and
        registered three times: as the base, as the first policy and as the frozen reference.

        SOURCE is one of:
          DIR          a Hugging Face model folder: GPT-2, Llama (SmolLM2, Llama 3.x) or Qwen2
                       (Qwen2.5); config.json, model.safetensors or sharded weights, tokenizer.json;
                       or a checkpoint folder of this project
          ORG/NAME     a model on the Hugging Face Hub, such as HuggingFaceTB/SmolLM2-135M-Instruct:
                       taken from the shared Hugging Face cache, pulled into it when missing (see
                       'rlhf pull --help'); the run records the repository and the exact commit,
                       which 'rlhf status' shows
          default      the built-in base model: pretrained from prompts/corpus.txt on first use
                       (about a minute) and cached under runs/.base-cache/
          random:S     a randomly initialised model of a bench configuration, with a byte-level BPE
                       tokenizer trained on generated text; for tests and trials. GPT-2 shapes S, M,
                       L (GPT-2 small); Llama shapes llama-s (small), smollm-135m (SmolLM2-135M) and
                       qwen-0.5b (Qwen2.5-0.5B), which get a ChatML chat template

        \(modelArgumentRule)

        With --adapter DIR, a PEFT LoRA adapter of that base (adapter_config.json and
        adapter_model.safetensors, as PeftModel.save_pretrained writes them; a causal-LM adapter,
        say from supervised fine-tuning) is merged into it, as PEFT's merge_and_unload does: the run
        starts from the adapted model. Adapters this code cannot compute exactly (DoRA, rsLoRA,
        per-module ranks, adapted biases, modules_to_save) are refused by name.

        Options:
          --run NAME    the run (default: default)
          --base SOURCE the base model (required)
          --adapter DIR a PEFT LoRA adapter to merge into the base
          --force       replace an existing run of that name (its labels and checkpoints are deleted)
          --seed S      initialisation seed for random:… sources (default 0)
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--base", "--seed", "--adapter"], flags: ["--force"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let source = a.string("--base") else {
            throw UsageError("--base SOURCE is required (a model folder, a Hub name ORG/NAME, default, or random:CONFIG)")
        }
        let seed = try a.int("--seed", default: 0, range: 0...Int.max)!
        let folder = runFolder(a)
        let fm = FileManager.default
        let exists = fm.fileExists(atPath: folder.appendingPathComponent(RunStore.databaseName).path)
        if exists && !a.flag("--force") {
            throw RuntimeError(
                "a run already exists at \(folder.path); choose another --run NAME, or pass --force to replace it (its labels and checkpoints will be deleted)"
            )
        }
        if !exists, fm.fileExists(atPath: folder.path), let items = try? fm.contentsOfDirectory(atPath: folder.path), !items.isEmpty,
            !a.flag("--force")
        {
            throw RuntimeError("\(folder.path) exists and is not empty but holds no run; choose another --run NAME or pass --force")
        }
        let (base, origin) = try loadSource(source, seed: UInt64(seed))
        var merged: LoRAAdapters?
        if let dir = a.string("--adapter") {
            let folder = URL(fileURLWithPath: dir)
            let cfg = folder.appendingPathComponent(PEFTAdapter.configFile)
            if FileManager.default.fileExists(atPath: cfg.path),
                let task = (try? JSONText.object(JSONText.readFile(cfg, limit: 1 << 20), cfg.path))?["task_type"] as? String, task != "CAUSAL_LM"
            {
                throw RuntimeError("--adapter \(dir): task_type \(task); init takes an adapter of a causal language model (CAUSAL_LM)")
            }
            let lora = try PEFTAdapter.load(folder, config: base.model.config)
            lora.merge(into: base.model)
            merged = lora
        }
        let described = source + (a.string("--adapter").map { " + adapter \($0)" } ?? "")

        // Build the run under a temporary name, then move it into place.
        let parent = folder.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(folder.lastPathComponent).init-\(getpid())")
        try? fm.removeItem(at: tmp)
        do {
            try fm.createDirectory(at: tmp.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
            try ModelFolder.save(
                base.model, tokenizer: base.tokenizer, annotations: base.annotations,
                to: tmp.appendingPathComponent("checkpoints/base"))
            try register(base, source: described, origin: origin, seed: seed, in: tmp)
            if fm.fileExists(atPath: folder.path) {
                let old = parent.appendingPathComponent(".\(folder.lastPathComponent).old-\(getpid())")
                try fm.moveItem(at: folder, to: old)
                try fm.moveItem(at: tmp, to: folder)
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: tmp, to: folder)
            }
            AtomicFile.syncDirectory(parent)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
        let c = base.model.config
        print("created run \(folder.path)")
        let heads = c.nKVHead == c.nHead ? "\(c.nHead) heads" : "\(c.nHead) heads (\(c.nKVHead) key/value)"
        if let o = origin { print("  from the Hugging Face Hub: \(o.repo) at commit \(o.commit) (revision \(o.revision))") }
        print(
            "  base model: \(source) — \(c.architecture.rawValue), \(c.nLayer) layers, \(c.nEmbd) wide, \(heads), context \(c.nCtx), vocabulary \(base.tokenizer.count)/\(c.vocabSize)"
        )
        if base.annotations.chatTemplate != nil && base.annotations.promptTemplate == nil {
            print(
                "  prompts are put into the model's chat template (one user turn); stop tokens \(base.annotations.stopTokens(base.tokenizer).map(String.init).joined(separator: ", "))"
            )
        }
        if let t = base.annotations.promptTemplate { print("  prompt template: \(JSONText.quote(t))") }
        if let m = merged {
            print(
                "  adapter \(a.string("--adapter")!) merged in: LoRA r=\(m.config.rank), alpha \(m.config.alpha), on \(m.adapters.count) projections (\(m.config.targets.joined(separator: ", ")))"
            )
        }
        print("next: rlhf prompts add FILE --run \(a.string("--run") ?? "default")")
    }

    static func register(_ base: PretrainedModel, source: String, origin: ModelOrigin?, seed: Int, in folder: URL) throws {
        let store = try RunStore(folder: folder, create: true)
        let run = try store.beginStageRun(
            stage: "init", config: jsonLine([("base", JSONText.quote(source)), ("seed", "\(seed)")]), seed: Int64(seed))
        let path = "checkpoints/base"
        let sha = try SHA256.hex(of: folder.appendingPathComponent(path).appendingPathComponent(ModelFolder.weightsFile))
        let config = String(decoding: try JSONEncoder().encode(base.model.config), as: UTF8.self)
        let template = base.annotations.promptTemplate
        let b = try store.registerModel(
            role: .base, path: path, sha256: sha, config: config, promptTemplate: template,
            parentId: nil, stageRunId: run, note: source, origin: origin)
        try store.registerModel(role: .policy, path: path, sha256: sha, config: config, promptTemplate: template, parentId: b.id, stageRunId: run)
        try store.registerModel(role: .reference, path: path, sha256: sha, config: config, promptTemplate: template, parentId: b.id, stageRunId: run)
        try store.finishStageRun(run, status: .succeeded)
    }

    /// A ChatML template (as SmolLM2-Instruct's, without its default system message) for the
    /// random Llama-family presets.
    static let chatML = """
        {%- for message in messages %}
            {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|im_start|>assistant\n' }}
        {%- endif %}

        """

    /// A model folder, a Hub model, default, or random:CONFIG; with the Hub origin of a Hub model.
    static func loadSource(_ source: String, seed: UInt64) throws -> (PretrainedModel, ModelOrigin?) {
        if source == "default" {
            let (folder, _) = try DefaultBase.ensure(.full()) { printError($0) }
            return (try ModelFolder.load(folder), nil)
        }
        if source.hasPrefix("random:") {
            let name = String(source.dropFirst("random:".count))
            guard let cfg = ModelConfig.preset(name) else {
                throw UsageError("unknown configuration in '\(source)' (use random: with one of \(ModelConfig.presetNames.joined(separator: ", ")))")
            }
            let model = TransformerModel(config: cfg)
            model.initialize(seed: seed)
            guard cfg.architecture.isLlamaFamily else {
                let tok = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 1 << 19, seed: 1), vocabSize: min(cfg.vocabSize, 4096))
                return (PretrainedModel(model: model, tokenizer: tok), nil)
            }
            let tok = try BPETrainer.train(
                corpus: SyntheticText.generate(bytes: 1 << 19, seed: 1), vocabSize: min(cfg.vocabSize, 4096),
                specialTokens: ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"])
            let notes = ModelAnnotations(chatTemplate: chatML, stopTokenIds: [tok.specialTokens["<|im_end|>"]!, tok.eosId!])
            return (PretrainedModel(model: model, tokenizer: tok, annotations: notes), nil)
        }
        let (url, origin) = try locateModel(source)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw RuntimeError(
                "--base \(source): no such folder (expected a Hugging Face model folder, a Hub name ORG/NAME, default, or random:CONFIG)")
        }
        return (try ModelFolder.load(url), origin)
    }
}
