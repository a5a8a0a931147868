import Foundation
import TransformerCore
import PPO
import DPO
import RunStore

/// `rlhf bench`: measures the compute core on fixed shapes and configurations.
enum BenchCommand: Command {
    static let name = "bench"
    static let summary = "Measure matmul, training and sampling speed of the compute core"
    static let help = """
    Usage: rlhf bench [--json] [--only matmul,train,generate,tokenize,ppo,ppo-memory,dpo,bf16] [--config S,M,L]
                      [--repeat N] [--numpy] [--torch] [--lora-rank R] [--frozen-dtype bf16] [--model DIR]

    Measures the compute core on this machine and prints one result per line.

      matmul    GFLOPS of C = A·B (row-major, fp32) at the shapes 1024×768×2304, 1024×768×3072,
                1024×3072×768, 2048×384×1536 and 8×768×50257 (M×K×N)
      train     tokens/s of forward + backward + AdamW on random tokens
                (S: batch 16×128, M: 8×256, L: 4×256)
      generate  new tokens/s of KV-cache sampling: batch 8, 16 prompt tokens, 64 new tokens,
                temperature 0.7, no early stop
      ppo       one PPO iteration on each --config (S when none is given; random models): 64
                prompts, 48 response tokens, 4 epochs × 4 minibatches, best of 3 iterations after
                a warm-up (1 timed iteration for models larger than M); seconds in rollout
                generation, reference, reward and value scoring, and the update's forward,
                backward and optimizer (not part of the default set). With --lora-rank, PPO
                with rank-R adapters: policy and reference share one set of weights, the value
                model the reward model's
      ppo-memory  one PPO iteration on one --config (L when none is given; 16 prompts, 32
                response tokens, 1 epoch × 2 minibatches): the bytes of every kind of live
                tensor (weights, adapters, gradients, AdamW moments, activations, KV cache),
                their total, and the process's peak resident memory; with --lora-rank, as PPO
                runs with LoRA (not part of the default set)
      dpo       one DPO epoch on config S (random models) over comparisons shaped like the quick
                demo's: 360 training rankings of 6 completions (15 pairs each), prompts of 8–24
                tokens, completions of 8–48, 8 rankings per step; seconds of the reference pass
                (once per run, over the 400 rankings), the epoch's 45 steps, and the validation
                pass over 40 rankings (not part of the default set)
      bf16      how much holding the block projections in bfloat16 (--frozen-dtype bf16)
                changes the logits of each --config's random model, or of --model DIR, over
                text it samples itself: max and mean |Δ logit|, mean KL, argmax agreement (not
                part of the default set)
      tokenize  MB/s of byte-level BPE encoding of 4 MB of generated text (words, numbers,
                punctuation, some non-ASCII) with a fresh 8192-token tokenizer trained on 1 MB
                of other text from the same generator; the word cache starts empty. Three rows:
                GPT-2's pre-tokenisation, Llama 3's, and Qwen2's with its NFC normaliser

    Configurations: GPT-2 shapes S (4 layers, 128 wide, vocab 512), M (6 layers, 384 wide, vocab
    8192), L (GPT-2 small: 12 layers, 768 wide, vocab 50257); Llama shapes llama-s, llama-m (the
    Llama counterparts of S and M), smollm-135m (SmolLM2-135M: 30 layers, 576 wide, 9 heads, 3
    key/value heads, vocab 49152; train 4×256) and qwen-0.5b (Qwen2.5-0.5B; train 4×256).

    Options:
      --json          one JSON object per line
      --only LIST     which measurements to run (default: matmul,train,generate,tokenize)
      --config LIST   which model configurations (default: S,M,L)
      --repeat N      timed repetitions per measurement (default: chosen per size)
      --shapes LIST   matmul shapes instead of the defaults, as M×K×N (or MxKxN), comma-separated
      --cold          matmul with B read from memory, not cache (rotating copies of B, 256 MiB)
      --transposed    matmul with B stored [N, K], as Linear ([out, in]) weights are
      --a-transposed  matmul with A stored [K, M], as in a weight gradient (dW = dYᵀ·X)
      --numpy         also time numpy's matmul (OpenBLAS) on the same shapes, in this run;
                      needs python3 with numpy
      --torch         also time PyTorch on the same train and generate measurements, in this
                      run: forward + backward + AdamW of GPT2LMHeadModel / LlamaForCausalLM /
                      Qwen2ForCausalLM of the same config, and HF generate (do_sample, the same
                      temperature, 64 new tokens forced); needs python3 with torch and
                      transformers (RLHF_PYTHON names another interpreter). PyTorch gets the same
                      thread count; ATEN_CPU_CAPABILITY and friends in the environment pass through
      --threads N     worker threads (default: all cores; also RLHF_THREADS)
      --lora-rank R   also time training with rank-R LoRA adapters on every projection over the
                      frozen model (α = 2R; only the adapters step), beside full fine-tuning;
                      ppo and ppo-memory run with LoRA instead
      --frozen-dtype T  bf16: also time LoRA training, generation and (with --lora-rank) the PPO
                      iteration with the frozen projections held in bfloat16, each beside its
                      f32 figure; ppo-memory measures the bf16 iteration instead (default f32)
      --model DIR     the model folder whose logits `bf16` compares (default: random models)

    The last line reports the peak resident memory of the process.
    """

    static let matmulShapes = [(1024, 768, 2304), (1024, 768, 3072), (1024, 3072, 768), (2048, 384, 1536), (8, 768, 50257)]

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--only", "--config", "--repeat", "--threads", "--shapes", "--lora-rank", "--frozen-dtype", "--model"],
                              flags: ["--json", "--numpy", "--cold", "--torch", "--transposed", "--a-transposed"])
        let loraRank = try a.int("--lora-rank", default: nil, range: 1...4096)
        if !a.positional.isEmpty { throw UsageError("unexpected argument '\(a.positional[0])'") }
        let kinds = ["matmul", "train", "generate", "tokenize", "ppo", "ppo-memory", "dpo", "bf16"]
        let only = Set(a.list("--only") ?? ["matmul", "train", "generate", "tokenize"])
        for w in only where !kinds.contains(w) {
            throw UsageError("unknown measurement '\(w)' (choose from \(kinds.joined(separator: ", ")))")
        }
        let configs = a.list("--config") ?? ["S", "M", "L"]
        for c in configs where ModelConfig.preset(c) == nil {
            throw UsageError("unknown configuration '\(c)' (choose from \(ModelConfig.presetNames.joined(separator: ", ")))")
        }
        var frozen = FrozenDType.f32
        if let f = a.string("--frozen-dtype") {
            guard let t = FrozenDType(rawValue: f) else { throw UsageError("--frozen-dtype must be f32 or bf16, got '\(f)'") }
            frozen = t
        }
        if frozen == .bf16 && loraRank == nil && !only.isDisjoint(with: ["ppo", "ppo-memory"]) {
            throw UsageError("--frozen-dtype bf16 with ppo or ppo-memory needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16")
        }
        let repeatCount = try a.int("--repeat", range: 1...1000)
        if let t = try a.int("--threads", range: 1...256) { Parallel.threadCount = t }
        let out = BenchOutput(json: a.flag("--json"))
        out.header("kernels \(Kernels.activePath.rawValue), threads \(Parallel.threadCount)")

        let shapes = try a.list("--shapes").map(parseShapes) ?? matmulShapes
        let cold = a.flag("--cold"), transposedA = a.flag("--a-transposed"), transposedB = a.flag("--transposed")
        if only.contains("matmul") {
            for (m, k, n) in shapes {
                let gflops = benchMatmul(m: m, k: k, n: n, repeats: repeatCount, cold: cold, transposed: transposedB, transposedA: transposedA)
                let gbps = gflops / Double(2 * m) * 4     // bytes of B streamed per second, in GB/s
                out.emit(["what": "matmul", "impl": "rlhf", "m": m, "k": k, "n": n, "gflops": round2(gflops), "cold": cold,
                          "b_transposed": transposedB, "a_transposed": transposedA, "b_gb_per_s": round2(gbps)],
                         text: "matmul  \(m)×\(k)×\(n)\(cold ? " cold" : "")\(transposedA ? " Aᵀ" : "")\(transposedB ? " Bᵀ" : "")".column(28)
                            + "\(fmt(gflops)) GFLOPS" + (m <= 16 ? " (B read at \(fmt(gbps)) GB/s)" : ""))
            }
            if a.flag("--numpy") { try runNumpy(out, shapes: shapes) }
        }
        if only.contains("ppo-memory") {
            // First, before other measurements leave freed memory behind in the heap. One
            // configuration per process: the peak resident mark covers everything before it.
            let names = a.list("--config") ?? ["L"]
            guard names.count == 1 else { throw UsageError("ppo-memory measures one --config per run (its peak is the process's)") }
            let tag = "ppo \(names[0])" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " bf16" : "")
            for (name, bytes) in try benchPPOMemory(ModelConfig.preset(names[0])!, loraRank: loraRank, frozen: frozen) {
                var fields: [String: Any] = ["what": "ppo-memory", "config": label(names[0]), "part": name, "mb": round2(Double(bytes) / 1_048_576),
                                             "frozen_dtype": frozen.rawValue]
                if let r = loraRank { fields["lora_rank"] = r }
                out.emit(fields, text: "\(tag)  \(name)".column(78) + "\(fmt(Double(bytes) / 1_048_576)) MiB")
            }
        }
        if only.contains("ppo") {
            // With bf16 frozen weights, the f32 iteration first, for the two side by side.
            for name in a.list("--config") ?? ["S"] {
                for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                    let (phases, total) = try benchPPO(ModelConfig.preset(name)!, loraRank: loraRank, frozen: dtype)
                    let tag = "ppo \(name)" + (loraRank.map { " LoRA r\($0)" } ?? "") + (frozen == .bf16 ? " \(dtype.rawValue)" : "")
                    for (phase, secs) in phases {
                        out.emit(["what": "ppo", "config": name, "phase": phase, "seconds": round3(secs), "lora_rank": loraRank ?? 0, "frozen_dtype": dtype.rawValue],
                                 text: "\(tag) \(phase)".column(38) + String(format: "%.3f s", secs))
                    }
                    out.emit(["what": "ppo", "config": name, "phase": "total", "seconds": round3(total), "lora_rank": loraRank ?? 0, "frozen_dtype": dtype.rawValue],
                             text: "\(tag) iteration total".column(38) + String(format: "%.3f s", total))
                }
            }
        }
        if only.contains("bf16") {
            var models: [(String, TransformerModel)] = []
            if let dir = a.string("--model") {
                models.append((dir, try ModelFolder.load(URL(fileURLWithPath: dir)).model))
            } else {
                for name in a.list("--config") ?? ["S"] {
                    let m = TransformerModel(config: ModelConfig.preset(name)!)
                    m.initialize(seed: 1)
                    models.append((label(name), m))
                }
            }
            for (name, model) in models {
                for (what, value) in bf16LogitChange(model) {
                    out.emit(["what": "bf16", "model": name, "measure": what, "value": value],
                             text: "bf16 \(name)  \(what)".column(64) + String(format: "%.6g", value))
                }
            }
        }
        if only.contains("dpo") {
            for (name, secs, count) in benchDPO() {
                out.emit(["what": "dpo", "phase": name, "seconds": round3(secs), "rankings": count],
                         text: "dpo      \(name)".column(28)
                            + String(format: "%.3f s (%@ rankings/s)", secs, fmt(Double(count) / secs)))
            }
        }
        if only.contains("tokenize") {
            for (pattern, nfc) in [(PreTokenization.gpt2, false), (.llama3, false), (.qwen2, true)] {
                let (mbps, tokens) = try benchTokenize(repeats: repeatCount, pattern: pattern, nfc: nfc)
                let label = "tokenize 4 MB, \(pattern.rawValue)" + (nfc ? "+NFC" : "")
                out.emit(["what": "tokenize", "pattern": pattern.rawValue, "nfc": nfc, "mb": 4, "vocab": 8192, "mb_per_s": round2(mbps),
                          "bytes_per_token": round2(tokens)],
                         text: label.column(28) + "\(fmt(mbps)) MB/s (\(fmt(tokens)) bytes/token)")
            }
        }
        for name in configs {
            let cfg = ModelConfig.preset(name)!
            if only.contains("train") {
                let (b, t) = trainShape(name)
                let (tps, loss) = try benchTrain(cfg, batch: b, length: t, repeats: repeatCount)
                out.emit(["what": "train", "impl": "rlhf", "config": label(name), "B": b, "T": t, "tokens_per_s": round2(tps), "loss": round2(Double(loss))],
                         text: "train    \(label(name))  B×T \(b)×\(t)".column(34) + "\(fmt(tps)) tokens/s")
                if let r = loraRank {
                    for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                        let (ltps, lloss) = try benchTrain(cfg, batch: b, length: t, repeats: repeatCount, loraRank: r, frozen: dtype)
                        out.emit(["what": "train", "impl": "rlhf", "config": label(name), "B": b, "T": t, "lora_rank": r, "frozen_dtype": dtype.rawValue,
                                  "tokens_per_s": round2(ltps), "loss": round2(Double(lloss))],
                                 text: "train    \(label(name))  LoRA r\(r)\(dtype == .bf16 ? " bf16" : "")".column(34)
                                    + "\(fmt(ltps)) tokens/s (\(fmt(ltps / tps))× full fine-tuning)")
                    }
                }
            }
            if only.contains("generate") {
                for dtype in frozen == .bf16 ? [FrozenDType.f32, .bf16] : [.f32] {
                    let tps = benchGenerate(cfg, repeats: repeatCount, frozen: dtype)
                    out.emit(["what": "generate", "impl": "rlhf", "config": label(name), "batch": 8, "prompt": 16, "new": 64, "tokens_per_s": round2(tps),
                              "frozen_dtype": dtype.rawValue],
                             text: "generate \(label(name))  8×(16+64)\(dtype == .bf16 ? " bf16" : "")".column(34) + "\(fmt(tps)) tokens/s")
                }
            }
            if a.flag("--torch") && (only.contains("train") || only.contains("generate")) {
                try runTorch(out, name: name, train: only.contains("train"), generate: only.contains("generate"))
            }
        }
        let rss = peakResidentBytes()
        out.emit(["what": "memory", "peak_rss_mb": round2(Double(rss) / 1_048_576)],
                 text: "peak resident memory        \(fmt(Double(rss) / 1_048_576)) MiB")
    }

    /// Parses `M×K×N` (or `MxKxN`) items of `--shapes`.
    static func parseShapes(_ items: [String]) throws -> [(Int, Int, Int)] {
        try items.map { item in
            let parts = item.split(whereSeparator: { $0 == "x" || $0 == "×" || $0 == "X" }).map { Int($0) }
            guard parts.count == 3, let m = parts[0], let k = parts[1], let n = parts[2], m > 0, k > 0, n > 0,
                  m * k + k * n + m * n <= 1 << 28 else {
                throw UsageError("--shapes: '\(item)' is not M×K×N with positive sizes (at most 2^28 floats in all)")
            }
            return (m, k, n)
        }
    }

    static func trainShape(_ name: String) -> (Int, Int) {
        switch name.uppercased() { case "S", "LLAMA-S": return (16, 128); case "M", "LLAMA-M": return (8, 256); default: return (4, 256) }
    }

    /// How a configuration is shown: S, M and L in capitals, the Llama shapes by name.
    static func label(_ name: String) -> String { ["s", "m", "l"].contains(name.lowercased()) ? name.uppercased() : name.lowercased() }

    // MARK: - Measurements

    static func benchMatmul(m: Int, k: Int, n: Int, repeats: Int?, cold: Bool = false, transposed: Bool = false, transposedA: Bool = false) -> Double {
        // Cold: rotate through copies of B that together exceed the last-level cache many times
        // over, so B comes from memory as a model's weights do when decoding.
        let copies = cold ? max(1, (256 << 20) / (k * n * 4)) : 1
        let a = FloatBuffer(count: m * k), c = FloatBuffer(count: m * n)
        let bs = (0..<copies).map { _ in FloatBuffer(count: k * n) }
        var rng = SeededRandom(seed: 7)
        for i in 0..<a.count { a[i] = rng.uniformFloat() - 0.5 }
        for b in bs { for i in 0..<b.count { b[i] = rng.uniformFloat() - 0.5 } }
        var which = 0
        let run = {
            let b = bs[which]
            which = (which + 1) % copies
            Gemm.multiply(m: m, n: n, k: k, a: transposedA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k),
                          b: transposed ? .transposed(b.pointer, columns: k) : .rowMajor(b.pointer, columns: n), c: c.pointer, ldc: n)
        }
        let seconds = timeBest(repeats: repeats, minimumTime: 0.3, run)
        return 2.0 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    /// Training tokens/s; with `loraRank`, of rank-r adapters on every projection (α = 2r) over
    /// the frozen model, the optimiser stepping only the adapters.
    static func benchTrain(_ cfg: ModelConfig, batch: Int, length: Int, repeats: Int?, loraRank: Int? = nil, frozen: FrozenDType = .f32) throws -> (Double, Float) {
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 1)
        if let r = loraRank {
            let lora = try LoRAAdapters(config: LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture)), model: cfg)
            lora.initialize(seed: 2)
            model.lora = lora
            if frozen == .bf16 { model.holdProjectionsInBFloat16() }
        }
        let opt = model.lora.map { AdamW(lora: $0, config: AdamWConfig(learningRate: 1e-4)) } ?? AdamW(layout: model.layout, config: AdamWConfig(learningRate: 1e-4))
        let acts = Activations(config: cfg, batch: batch, length: length)
        var rng = SeededRandom(seed: 2)
        let tokens = (0..<batch * length).map { _ in Int32(rng.int(below: cfg.vocabSize)) }
        let targets = (0..<batch * length).map { i in i % length == length - 1 ? Int32(-1) : tokens[i + 1] }
        let tb = TokenBatch(tokens: tokens, batch: batch, length: length)
        var loss: Float = 0
        let step = {
            model.forward(tb, acts)
            loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
            if let lora = model.lora {
                lora.zeroGradients()
                model.backward(tb, acts, fromLogits: true)
                clipGradientNorm(lora.gradients, maxNorm: 1)
                opt.update(params: lora.parameters, grads: lora.gradients, lr: 1e-4)
            } else {
                model.zeroGradients()
                model.backward(tb, acts, fromLogits: true)
                clipGradientNorm(model.gradients, maxNorm: 1)
                opt.update(params: model.parameters, grads: model.gradients, lr: 1e-4)
            }
        }
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0, step)
        return (Double(batch * length) / seconds, loss)
    }

    static func benchGenerate(_ cfg: ModelConfig, repeats: Int?, frozen: FrozenDType = .f32) -> Double {
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 3)
        if frozen == .bf16 { model.holdProjectionsInBFloat16() }
        let gen = Generator(model: model)
        var rng = SeededRandom(seed: 4)
        let prompts = (0..<8).map { _ in (0..<16).map { _ in Int32(rng.int(below: cfg.vocabSize)) } }
        let settings = SamplingSettings(temperature: 0.7)
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0) {
            var r = SeededRandom(seed: 5)
            _ = gen.generate(prompts: prompts, maxNewTokens: 64, settings: settings, eos: nil, pad: 0, rng: &r)
        }
        return Double(8 * 64) / seconds
    }

    /// One PPO iteration after a warm-up: (phase, seconds) and the total. The best of three for
    /// models up to M's size, one timed iteration for larger ones.
    /// PPO's four models with random weights: without LoRA, four of them (the reference a copy
    /// of the policy, the value model of the reward model); with rank-r LoRA, two sets of
    /// weights, the policy's shared by the reference and the reward model's by the value model,
    /// with adapters (α = 2r, every projection) on the policy and the value model.
    static func ppoModels(_ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType = .f32) throws -> (policy: TransformerModel, reference: TransformerModel, value: TransformerModel, reward: TransformerModel) {
        let policy = TransformerModel(config: cfg), reward = TransformerModel(config: cfg, scalarHead: true)
        policy.initialize(seed: 1)
        reward.copyParameters(from: policy)
        guard let r = loraRank else {
            let reference = TransformerModel(config: cfg), value = TransformerModel(config: cfg, scalarHead: true)
            reference.copyParameters(from: policy)
            value.copyParameters(from: reward)
            return (policy, reference, value, reward)
        }
        let lc = LoRAConfig(rank: r, alpha: Float(2 * r), targets: LoRAConfig.allTargets(cfg.architecture))
        policy.lora = try LoRAAdapters(config: lc, model: cfg)
        policy.lora!.initialize(seed: 2)
        let value = TransformerModel(sharingWeightsOf: reward)
        value.lora = try LoRAAdapters(config: lc, model: cfg, scalarHead: true)
        value.lora!.initialize(seed: 3)
        if frozen == .bf16 { policy.holdProjectionsInBFloat16(); reward.holdProjectionsInBFloat16() }
        return (policy, TransformerModel(sharingWeightsOf: policy), value, reward)
    }

    static func benchPPO(_ cfg: ModelConfig, loraRank: Int? = nil, frozen: FrozenDType = .f32) throws -> ([(String, Double)], Double) {
        let (policy, reference, value, reward) = try ppoModels(cfg, loraRank: loraRank, frozen: frozen)
        var s = PPOConfig()
        s.batch = 64; s.responseLength = 48; s.ppoEpochs = 4; s.minibatches = 4; s.iterations = 4
        let (trainer, _, prompts) = ppoSetup(policy: policy, reference: reference, value: value, reward: reward,
                                             settings: s, rewardRows: 16, promptLengths: 8...24)
        _ = trainer.step(prompts: prompts)
        // The best of three timed iterations, as the other measurements take the best run.
        var best: ([(String, Double)], Double) = ([], .infinity)
        let timed = policy.layout.count <= 40_000_000 ? 3 : 1
        for _ in 0..<timed {
            let t = Date()
            _ = trainer.step(prompts: prompts)
            let total = Date().timeIntervalSince(t)
            if total < best.1 { best = (trainer.profile, total) }
        }
        return best
    }

    /// How much holding `model`'s projections in bfloat16 changes its output, over text the
    /// model writes itself (4 random 8-token prompts and 120 tokens sampled at temperature 1):
    /// the largest and the mean |Δ logit|, the spread of the logits for scale, the mean
    /// KL(f32 ‖ bf16) of the next-token distributions, and how often their argmax agrees.
    static func bf16LogitChange(_ model: TransformerModel) -> [(String, Double)] {
        let cfg = model.config
        var rng = SeededRandom(seed: 11)
        let prompts = (0..<4).map { _ in (0..<8).map { _ in Int32(rng.int(below: cfg.vocabSize)) } }
        let length = min(128, cfg.nCtx)
        let out = Generator(model: model).generate(prompts: prompts, maxNewTokens: length - 8, settings: SamplingSettings(temperature: 1),
                                                   eos: nil, pad: 0, rng: &rng)
        let batch = TokenBatch(leftPadding: zip(prompts, out).map { $0 + $1.tokens }, pad: 0)
        let half = TransformerModel(config: cfg, scalarHead: model.hasScalarHead)
        half.copyParameters(from: model)
        half.holdProjectionsInBFloat16()
        let a = Activations(config: cfg, batch: batch.batch, length: batch.length)
        let b = Activations(config: cfg, batch: batch.batch, length: batch.length)
        model.forward(batch, a)
        half.forward(batch, b)
        let v = cfg.vocabSize
        var maxDiff = 0.0, sumDiff = 0.0, sumSq = 0.0, sum = 0.0, kl = 0.0, agree = 0, rows = 0
        for r in 0..<batch.batch * batch.length where batch.mask[r] == 1 {
            let p = a.logits.pointer + r * v, q = b.logits.pointer + r * v
            var mp = -Double.infinity, mq = -Double.infinity, ap = 0, aq = 0
            for j in 0..<v {
                let d = abs(Double(p[j]) - Double(q[j]))
                maxDiff = max(maxDiff, d); sumDiff += d; sum += Double(p[j]); sumSq += Double(p[j]) * Double(p[j])
                if Double(p[j]) > mp { mp = Double(p[j]); ap = j }
                if Double(q[j]) > mq { mq = Double(q[j]); aq = j }
            }
            var zp = 0.0, zq = 0.0
            for j in 0..<v { zp += Foundation.exp(Double(p[j]) - mp); zq += Foundation.exp(Double(q[j]) - mq) }
            let lzp = Foundation.log(zp) + mp, lzq = Foundation.log(zq) + mq
            var k = 0.0
            for j in 0..<v {
                let lp = Double(p[j]) - lzp, lq = Double(q[j]) - lzq
                k += Foundation.exp(lp) * (lp - lq)
            }
            kl += k; agree += ap == aq ? 1 : 0; rows += 1
        }
        let n = Double(rows * v), mean = sum / n
        return [("tokens compared", Double(rows)),
                ("max |Δ logit|", maxDiff),
                ("mean |Δ logit|", sumDiff / n),
                ("std of the f32 logits (for scale)", (sumSq / n - mean * mean).squareRoot()),
                ("mean KL(f32 ‖ bf16) per token, nats", kl / Double(rows)),
                ("argmax agreement, %", 100 * Double(agree) / Double(rows))]
    }

    /// One DPO epoch on config S with random models, over rankings shaped like the quick demo's:
    /// (phase, seconds, rankings) for the reference pass, the epoch and the validation pass.
    static func benchDPO() -> [(String, Double, Int)] {
        let cfg = ModelConfig.preset("S")!
        let policy = TransformerModel(config: cfg), reference = TransformerModel(config: cfg)
        policy.initialize(seed: 1)
        reference.copyParameters(from: policy)
        var rng = SeededRandom(seed: 7)
        func tokens(_ range: ClosedRange<Int>) -> [Int32] {
            (0..<(range.lowerBound + rng.int(below: range.count))).map { _ in Int32(2 + rng.int(below: cfg.vocabSize - 2)) }
        }
        var pairs: [ComparisonGroup.Pair] = []
        for i in 0..<6 { for j in (i + 1)..<6 { pairs.append(.init(chosen: i, rejected: j)) } }
        let examples = (0..<400).map { i in
            PreferenceExample(rankingId: Int64(i), promptId: Int64(i), completionIds: (0..<6).map { Int64(6 * i + $0) },
                              prompt: tokens(8...24), responses: (0..<6).map { _ in tokens(8...48) }, pairs: pairs)
        }
        let train = Array(examples.prefix(360)), val = Array(examples.suffix(40))
        let trainer = DPOTrainer(policy: policy, objective: DPOObjective(), rows: 16, pad: 1)
        let opt = AdamW(layout: policy.layout, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0))
        var t = Date()
        let ref = trainer.logProbSums(reference, examples)
        let refSeconds = Date().timeIntervalSince(t)
        t = Date()
        for start in stride(from: 0, to: train.count, by: 8) {
            let range = start..<min(start + 8, train.count)
            _ = trainer.accumulateGradients(Array(train[range]), reference: Array(ref[range]))
            clipGradientNorm(policy.gradients, maxNorm: 1)
            opt.update(params: policy.parameters, grads: policy.gradients, lr: 1e-5)
        }
        let epochSeconds = Date().timeIntervalSince(t)
        t = Date()
        _ = trainer.evaluate(val, reference: Array(ref.suffix(40)))
        let valSeconds = Date().timeIntervalSince(t)
        return [("reference pass", refSeconds, examples.count), ("epoch (45 steps)", epochSeconds, train.count),
                ("validation pass", valSeconds, val.count)]
    }

    /// A PPO trainer over the given models (EOS 0, PAD 1), rewarded by `reward` through a
    /// runner, and `settings.batch` random prompts with lengths in `promptLengths`.
    static func ppoSetup(policy: TransformerModel, reference: TransformerModel, value: TransformerModel, reward: TransformerModel, settings: PPOConfig,
                         rewardRows: Int, promptLengths: ClosedRange<Int>) -> (PPOTrainer, ScalarHeadRunner, [[Int32]]) {
        let rm = ScalarHeadRunner(model: reward, rows: rewardRows)
        let trainer = PPOTrainer(policy: policy, reference: reference, value: value, eos: 0, pad: 1, settings: settings) { ps, rs in
            rm.scores(zip(ps, rs).map { $0 + $1 })
        }
        var rng = SeededRandom(seed: 7)
        let vocab = policy.config.vocabSize
        let prompts = (0..<settings.batch).map { _ in
            (0..<(promptLengths.lowerBound + rng.int(below: promptLengths.count))).map { _ in Int32(2 + rng.int(below: vocab - 2)) }
        }
        return (trainer, rm, prompts)
    }

    /// One PPO iteration on `cfg` (16 prompts, 32 response tokens, 1 epoch × 2 minibatches)
    /// with random models, fully fine-tuned or with rank-r LoRA: the bytes of each kind of live
    /// tensor, their total, the process's resident memory before the models existed, and the
    /// peak resident memory of the iteration.
    static func benchPPOMemory(_ cfg: ModelConfig, loraRank: Int?, frozen: FrozenDType = .f32) throws -> [(String, Int)] {
        guard resetPeakResident() else {
            throw RuntimeError("ppo-memory needs /proc/self/clear_refs to reset the peak resident memory")
        }
        let baseline = procStatusBytes("VmRSS")
        let (policy, reference, value, reward) = try ppoModels(cfg, loraRank: loraRank, frozen: frozen)
        var s = PPOConfig()
        s.batch = 16; s.responseLength = 32; s.ppoEpochs = 1; s.minibatches = 2; s.iterations = 1
        let (trainer, rm, prompts) = ppoSetup(policy: policy, reference: reference, value: value, reward: reward,
                                              settings: s, rewardRows: 8, promptLengths: 16...24)
        _ = trainer.step(prompts: prompts)
        let peak = procStatusBytes("VmHWM")
        var parts = trainer.memoryBreakdown
        parts.insert(("reward model parameters", reward.weightBytes), at: 1)
        parts.append(("reward model activations", 4 * rm.activationFloatCount))
        let live = parts.reduce(0) { $0 + $1.1 }
        return parts + [("live tensors, total", live), ("process before the models (code, runtime)", baseline),
                        ("peak resident memory of the iteration", peak)]
    }

    /// Resets the kernel's peak-RSS mark of this process (Linux: "5" to /proc/self/clear_refs).
    static func resetPeakResident() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        return (try? h.write(contentsOf: Data("5".utf8))) != nil
    }

    /// A "kB" field of /proc/self/status, in bytes (0 when unreadable).
    static func procStatusBytes(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }

    static func benchTokenize(repeats: Int?, pattern: PreTokenization, nfc: Bool) throws -> (Double, Double) {
        let trained = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 1 << 20, seed: 1), vocabSize: 8192)
        // The same vocabulary and merges under Llama 3's or Qwen2's pre-tokenisation (and NFC).
        let tok = pattern == .gpt2 && !nfc ? trained : try Tokenizer(
            vocab: Dictionary(uniqueKeysWithValues: trained.tokens.enumerated().map { ($1, $0) }),
            merges: trained.merges.map { (trained.tokens[Int($0.0)], trained.tokens[Int($0.1)]) },
            special: trained.specialTokens.mapValues(Int.init), preTokenization: pattern, normalizesNFC: nfc)
        let text = SyntheticText.generate(bytes: 4 << 20, seed: 2)
        var count = 0
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0) {
            tok.clearCache()
            count = tok.encode(text).count
        }
        let bytes = Double(text.utf8.count)
        return (bytes / seconds / 1e6, bytes / Double(max(count, 1)))
    }

    /// Runs `body` once to warm up, then repeatedly; returns the best time of one run.
    static func timeBest(repeats: Int?, minimumTime: Double, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        var total = 0.0
        var count = 0
        while true {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, dt); total += dt; count += 1
            if let repeats { if count >= repeats { break } } else if total >= minimumTime && count >= 3 { break }
            if repeats == nil && count >= 50 { break }
        }
        return best
    }

    /// PyTorch on the same train and generate measurements as `benchTrain`/`benchGenerate`, in
    /// this run: the model class transformers has for the configuration, fp32, the same shapes.
    static func runTorch(_ out: BenchOutput, name: String, train: Bool, generate: Bool) throws {
        let cfg = ModelConfig.preset(name)!
        let (b, t) = trainShape(name)
        let json = String(decoding: try JSONEncoder().encode(cfg), as: UTF8.self)
        let script = """
        import json, sys, time, torch
        torch.set_num_threads(\(Parallel.threadCount))
        torch.manual_seed(0)
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
        c = json.loads(sys.argv[1])
        if c["model_type"] == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"], n_positions=c["n_positions"],
                vocab_size=c["vocab_size"], layer_norm_epsilon=c["layer_norm_epsilon"], resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
        else:
            kw = dict(hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                num_key_value_heads=c["num_key_value_heads"], head_dim=c["head_dim"], intermediate_size=c["intermediate_size"],
                max_position_embeddings=c["max_position_embeddings"], vocab_size=c["vocab_size"], rms_norm_eps=c["rms_norm_eps"],
                rope_theta=c["rope_theta"], tie_word_embeddings=c["tie_word_embeddings"], rope_scaling=c.get("rope_scaling"))
            model = LlamaForCausalLM(LlamaConfig(**kw)) if c["model_type"] == "llama" else Qwen2ForCausalLM(Qwen2Config(use_sliding_window=False, **kw))
        model = model.float()
        V = c["vocab_size"]
        def best_of(fn, minimum):
            fn()
            best, total, n = 1e9, 0.0, 0
            while total < minimum or n < 3:
                t0 = time.perf_counter(); fn(); dt = time.perf_counter() - t0
                best = min(best, dt); total += dt; n += 1
            return best
        env = {"torch": torch.__version__, "transformers": transformers.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        if \(train ? "True" : "False"):
            B, T = \(b), \(t)
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            ids = torch.randint(0, V, (B, T))
            def step():
                loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step(); opt.zero_grad(set_to_none=True)
            s = best_of(step, 1.0)
            print(json.dumps(dict(env, what="train", B=B, T=T, tokens_per_s=round(B * T / s, 2))), flush=True)
            del opt
        if \(generate ? "True" : "False"):
            model.eval()
            prompts = torch.randint(0, V, (8, 16))
            mask = torch.ones_like(prompts)
            def gen():
                with torch.inference_mode():
                    model.generate(prompts, attention_mask=mask, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                                   max_new_tokens=64, min_new_tokens=64, pad_token_id=0)
            s = best_of(gen, 1.0)
            print(json.dumps(dict(env, what="generate", tokens_per_s=round(8 * 64 / s, 2))), flush=True)
        """
        let data = try runPython(script, arguments: [json], env: ["TRANSFORMERS_VERBOSITY": "error"], flag: "--torch", needs: "torch and transformers")
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let what = obj["what"] as? String, let tps = obj["tokens_per_s"] as? Double else { continue }
            let versions = "torch \(obj["torch"] as? String ?? "?"), \(obj["cpu_capability"] as? String ?? "?")"
            var fields: [String: Any] = ["what": what, "impl": "torch", "config": label(name), "tokens_per_s": tps,
                                         "torch": obj["torch"] as? String ?? "", "torch_cpu_capability": obj["cpu_capability"] as? String ?? ""]
            if what == "train" {
                fields["B"] = b; fields["T"] = t
                out.emit(fields, text: "torch    \(label(name))  B×T \(b)×\(t)".column(34) + "\(fmt(tps)) tokens/s (\(versions))")
            } else {
                fields["batch"] = 8; fields["prompt"] = 16; fields["new"] = 64
                out.emit(fields, text: "HF gen   \(label(name))  8×(16+64)".column(34) + "\(fmt(tps)) tokens/s (\(versions))")
            }
        }
    }

    /// Runs a Python script (python3, or the interpreter RLHF_PYTHON names) with this run's
    /// thread count and returns its standard output.
    static func runPython(_ script: String, arguments: [String] = [], env extra: [String: String], flag: String, needs: String) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [ProcessInfo.processInfo.environment["RLHF_PYTHON"] ?? "python3", "-c", script] + arguments
        var env = ProcessInfo.processInfo.environment
        env["OMP_NUM_THREADS"] = String(Parallel.threadCount)
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { throw RuntimeError("could not start python3 for \(flag): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw RuntimeError("python3 with \(needs) failed for \(flag) (is it installed? RLHF_PYTHON picks the interpreter)") }
        return data
    }

    static func runNumpy(_ out: BenchOutput, shapes matmulShapes: [(Int, Int, Int)]) throws {
        let shapes = matmulShapes.map { "(\($0.0),\($0.1),\($0.2))" }.joined(separator: ",")
        let script = """
        import json, time, numpy as np
        for m, k, n in [\(shapes)]:
            rng = np.random.default_rng(7)
            a = (rng.random((m, k), dtype=np.float32) - 0.5); b = (rng.random((k, n), dtype=np.float32) - 0.5)
            a @ b
            best, total, count = 1e9, 0.0, 0
            while total < 0.3 or count < 3:
                t0 = time.perf_counter(); a @ b; dt = time.perf_counter() - t0
                best = min(best, dt); total += dt; count += 1
            print(json.dumps({"m": m, "k": k, "n": n, "gflops": round(2 * m * n * k / best / 1e9, 2)}), flush=True)
        """
        let data = try runPython(script, env: ["OPENBLAS_NUM_THREADS": String(Parallel.threadCount)], flag: "--numpy", needs: "numpy")
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let m = obj["m"] as? Int, let k = obj["k"] as? Int, let n = obj["n"] as? Int,
                  let g = obj["gflops"] as? Double else { continue }
            out.emit(["what": "matmul", "impl": "numpy", "m": m, "k": k, "n": n, "gflops": g],
                     text: "numpy   \(m)×\(k)×\(n)".column(28) + "\(fmt(g)) GFLOPS")
        }
    }
}

/// Prints bench results as text or JSON lines.
final class BenchOutput {
    let json: Bool
    init(json: Bool) { self.json = json }

    /// The first lines of the text output: what runs, then the CPU it runs on.
    func header(_ s: String) {
        if !json { print("rlhf bench (\(s))"); print("cpu".column(28) + CPUDescription.current) }
    }

    func emit(_ fields: [String: Any], text: String) {
        if json {
            var fields = fields
            if fields["isa"] == nil { fields["isa"] = Kernels.activePath.rawValue }
            if fields["cpu"] == nil { fields["cpu"] = CPUDescription.current }
            let order = ["what", "isa", "cpu", "impl", "phase", "config", "m", "k", "n", "B", "T", "batch", "prompt", "new"]
            var keys = order.filter { fields[$0] != nil }
            keys += fields.keys.filter { !order.contains($0) }.sorted()
            let parts = keys.map { k -> String in
                let v = fields[k]!
                if let s = v as? String { return "\"\(k)\":" + JSONText.quote(s) }
                return "\"\(k)\":\(v)"
            }
            print("{" + parts.joined(separator: ",") + "}")
        } else {
            print(text)
        }
    }
}

func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
func fmt(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.2f", x) }

/// Peak resident set size of this process, in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024       // kilobytes on Linux
    #else
    getrusage(RUSAGE_SELF, &usage)
    return usage.ru_maxrss              // bytes on macOS
    #endif
}

extension String {
    /// Padded with spaces to `width` characters for a column of figures; a longer label is
    /// kept whole, followed by two spaces, never cut.
    func column(_ width: Int) -> String { count >= width ? self + "  " : padding(toLength: width, withPad: " ", startingAt: 0) }
}
