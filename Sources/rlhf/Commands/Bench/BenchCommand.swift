import Foundation
import StageKit
import TransformerCore

/// `rlhf bench`: measures the compute core on fixed shapes and configurations. This file reads
/// the command line and runs the measurements in a fixed order; each family of measurement is in
/// a file of its own beside it (BenchPeak, BenchMatmul, BenchTrain, BenchGenerate, BenchTokenize,
/// BenchPPO, BenchDPO, BenchBF16, BenchPrecision), the PyTorch and numpy runners in
/// BenchReferences, TRL's in BenchTRL, and the printing in BenchOutput.
enum BenchCommand: Command {
    static let name = "bench"
    static let summary = "Measure matmul, training and sampling speed of the compute core"
    static let help = """
        Usage: rlhf bench [--json] [--only matmul,train,generate,tokenize,peak,precision,ppo,ppo-memory,grpo,dpo,sft,bf16]
                          [--config S,M,L] [--repeat N] [--precision f32,bf16] [--numpy] [--torch] [--lora-rank R]
                          [--frozen-dtype bf16] [--model DIR|ORG/NAME] [--trl]

        Measures the compute core on this machine and prints one result per line.

          matmul    GFLOPS of C = A·B (row-major, fp32) at the shapes 1024×768×2304, 1024×768×3072,
                    1024×3072×768, 2048×384×1536 and 8×768×50257 (M×K×N), and their share of the
                    peak of the precision in use
          train     tokens/s of forward + backward + AdamW on random tokens
                    (S: batch 16×128, M: 8×256, L: 4×256), their GFLOPS (6 × parameters +
                    attention per token; 4 × each frozen parameter with LoRA) and share of the peak
          peak      this CPU's fp32 FMA peak on every thread at once, on the widest vectors of the
                    kernel path (16 floats on AVX-512, 8 on AVX2, 4 portable), and where the CPU
                    has AVX512-BF16 its bfloat16 dot-product peak (vdpbf16ps): independent chains
                    for about 80 ms (not part of the default set; measured anyway, once, when a
                    matmul or train row needs it)
          precision the built-in base model's recipe (config S, the bundled corpus) pretrained for
                    \(precisionSteps) steps from the same seed in f32 and in bf16: both final losses, their
                    validation losses and the differences (not part of the default set; run it from
                    the project's folder)
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
          grpo      one GRPO iteration on each --config (S when none is given; random models) in the
                    setting of TRL's GRPOTrainer figure: 16 prompts × a group of 4 × 48 new tokens,
                    μ = 1, β = 0 (no reference pass), full fine-tuning, a reward model of the same
                    shape; best of 3 iterations after a warm-up (1 for models larger than M); seconds
                    in generation (with the decode's GFLOPS and share of the peak), scoring,
                    reference and the update, and the total (iteration_s in --json). With --lora-rank, rank-R adapters on every projection (not part of the
                    default set)
          dpo       one DPO epoch on config S (random models) over comparisons shaped like the quick
                    demo's: 360 training rankings of 6 completions (15 pairs each), prompts of 8–24
                    tokens, completions of 8–48, 8 rankings per step; seconds of the reference pass
                    (once per run, over the 400 rankings), the epoch's 45 steps, and the validation
                    pass over 40 rankings (not part of the default set)
          sft       an SFT step (rlhf sft, full fine-tuning) beside the pretraining step of the same
                    shape (the train row's, per --config, default S), prompts a quarter of each
                    sequence: both tokens/s, best of repeated steps in three alternating rounds, and
                    their ratio (not part of the
                    default set)
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
          --trl           with grpo, also time TRL's GRPOTrainer in the same setting, in this run, on
                          a random model of each --config's shape (fp32; bf16 with --precision bf16,
                          as TRL's bf16=True): the median of two steps after a warm-up, split into
                          generation, reward scoring, other preparation and the update; needs python3
                          with torch, transformers, datasets and trl (RLHF_PYTHON names another)
          --threads N     worker threads (default: all cores; also RLHF_THREADS)
          --precision L   f32, bf16 or f32,bf16: the precision of the products, each measurement
                          repeated in each (default f32); bf16 rounds the operands of every product
                          to bfloat16 and sums in single precision, on vdpbf16ps where the kernel
                          path is avx512bf16. peak, precision and tokenize run once
          --lora-rank R   also time training with rank-R LoRA adapters on every projection over the
                          frozen model (α = 2R; only the adapters step), beside full fine-tuning;
                          ppo, ppo-memory and grpo run with LoRA instead
          --frozen-dtype T  bf16: also time LoRA training, generation and (with --lora-rank) the PPO
                          iteration with the frozen projections held in bfloat16, each beside its
                          f32 figure; ppo-memory measures the bf16 iteration instead (default f32)
          --model DIR     the model folder (or Hub name ORG/NAME) whose logits `bf16` compares
                          (default: random models)

        The last line reports the peak resident memory of the process.
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args,
            options: ["--only", "--config", "--repeat", "--threads", "--shapes", "--lora-rank", "--frozen-dtype", "--model", PrecisionOption.name],
            flags: ["--json", "--numpy", "--cold", "--torch", "--trl", "--transposed", "--a-transposed"])
        let loraRank = try a.int("--lora-rank", default: nil, range: 1...4096)
        if !a.positional.isEmpty { throw UsageError("unexpected argument '\(a.positional[0])'") }
        let kinds = ["matmul", "train", "generate", "tokenize", "peak", "precision", "ppo", "ppo-memory", "grpo", "dpo", "sft", "bf16"]
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
        if frozen == .bf16 && loraRank == nil && !only.isDisjoint(with: ["ppo", "ppo-memory", "grpo"]) {
            throw UsageError(
                "--frozen-dtype bf16 with ppo, ppo-memory or grpo needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16")
        }
        let precisions = try a.string(PrecisionOption.name).map(PrecisionOption.parseList) ?? [.f32]
        if precisions.count > 1 && only.contains("ppo-memory") {
            throw UsageError("ppo-memory measures one --precision per run (its peak is the process's)")
        }
        if a.flag("--trl") && (!only.contains("grpo") || loraRank != nil) {
            throw UsageError("--trl times TRL's GRPOTrainer beside the grpo rows: use it with --only grpo and full fine-tuning (no --lora-rank)")
        }
        let repeatCount = try a.int("--repeat", range: 1...1000)
        if let t = try a.int("--threads", range: 1...256) { Parallel.threadCount = t }
        let out = BenchOutput(json: a.flag("--json"))
        out.header(
            "kernels \(Kernels.activePath.rawValue), threads \(Parallel.threadCount), precision \(precisions.map(\.rawValue).joined(separator: ","))")
        /// Runs `body` once in each precision asked for.
        func eachPrecision(_ body: () throws -> Void) rethrows {
            for p in precisions { try Kernels.using(precision: p, body) }
        }
        // Measured once, on first use: by the peak rows, or by the first matmul or train row.
        let peak = PeakReference()

        if only.contains("peak") {
            reportPeak(out, peak)
        }
        let shapes = try a.list("--shapes").map(parseShapes) ?? matmulShapes
        let cold = a.flag("--cold"), transposedA = a.flag("--a-transposed"), transposedB = a.flag("--transposed")
        if only.contains("matmul") {
            eachPrecision {
                reportMatmul(out, peak, shapes: shapes, repeats: repeatCount, cold: cold, transposedA: transposedA, transposedB: transposedB)
            }
            if a.flag("--numpy") { try runNumpy(out, shapes: shapes) }
        }
        if only.contains("ppo-memory") {
            // First, before other measurements leave freed memory behind in the heap. One
            // configuration per process: the peak resident mark covers everything before it.
            let names = a.list("--config") ?? ["L"]
            guard names.count == 1 else { throw UsageError("ppo-memory measures one --config per run (its peak is the process's)") }
            try eachPrecision { try reportPPOMemory(out, config: names[0], loraRank: loraRank, frozen: frozen) }
        }
        if only.contains("ppo") {
            try eachPrecision { try reportPPO(out, configs: a.list("--config") ?? ["S"], loraRank: loraRank, frozen: frozen) }
        }
        if only.contains("grpo") {
            try eachPrecision { try reportGRPO(out, peak, configs: a.list("--config") ?? ["S"], loraRank: loraRank, frozen: frozen) }
            if a.flag("--trl") {
                for name in a.list("--config") ?? ["S"] {
                    for p in precisions { try runTRLGRPO(out, name: name, precision: p) }
                }
            }
        }
        if only.contains("bf16") {
            try eachPrecision { try reportBF16(out, folder: a.string("--model"), configs: a.list("--config") ?? ["S"]) }
        }
        if only.contains("dpo") {
            eachPrecision { reportDPO(out) }
        }
        if only.contains("sft") {
            try eachPrecision { try reportSFT(out, configs: a.list("--config") ?? ["S"], repeats: repeatCount) }
        }
        if only.contains("tokenize") {
            try reportTokenize(out, repeats: repeatCount)
        }
        if only.contains("precision") {
            try reportPrecision(out)
        }
        for name in configs {
            let cfg = ModelConfig.preset(name)!
            if only.contains("train") {
                try eachPrecision { try reportTrain(out, peak, cfg, name: name, repeats: repeatCount, loraRank: loraRank, frozen: frozen) }
            }
            if only.contains("generate") {
                eachPrecision { reportGenerate(out, cfg, name: name, repeats: repeatCount, frozen: frozen) }
            }
            if a.flag("--torch") && (only.contains("train") || only.contains("generate")) {
                // PyTorch in the same precisions: fp32, and bf16 autocast for bf16.
                for p in precisions {
                    try runTorch(out, name: name, train: only.contains("train"), generate: only.contains("generate"), precision: p)
                }
            }
        }
        let rss = peakResidentBytes()
        out.emit(
            ["what": "memory", "peak_rss_mb": round2(Double(rss) / 1_048_576)],
            text: "peak resident memory        \(fmt(Double(rss) / 1_048_576)) MiB")
    }

    /// Parses `M×K×N` (or `MxKxN`) items of `--shapes`.
    static func parseShapes(_ items: [String]) throws -> [(Int, Int, Int)] {
        try items.map { item in
            let parts = item.split(whereSeparator: { $0 == "x" || $0 == "×" || $0 == "X" }).map { Int($0) }
            guard parts.count == 3, let m = parts[0], let k = parts[1], let n = parts[2], m > 0, k > 0, n > 0,
                m * k + k * n + m * n <= 1 << 28
            else {
                throw UsageError("--shapes: '\(item)' is not M×K×N with positive sizes (at most 2^28 floats in all)")
            }
            return (m, k, n)
        }
    }

    /// How a configuration is shown: S, M and L in capitals, the Llama shapes by name.
    static func label(_ name: String) -> String { ["s", "m", "l"].contains(name.lowercased()) ? name.uppercased() : name.lowercased() }

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
}
