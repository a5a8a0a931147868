import Foundation
import TransformerCore

/// `rlhf bench --only grpo --trl`: TRL's `GRPOTrainer` in the setting of the grpo rows, in this
/// run, through an embedded Python script.
extension BenchCommand {
    /// Times TRL's GRPOTrainer on a random model of configuration `name` (the transformers class
    /// for its family, fp32, or bf16 under TRL's `bf16=True`), with a reward model of the same
    /// shape: 16 prompts of 8–24 tokens × 4 completions × 48 new tokens, one optimizer step per
    /// generation, μ = 1, β = 0, full fine-tuning. The median of two steps after a warm-up step,
    /// split by TRL's own profiling contexts into generation, reward scoring, the rest of the
    /// batch preparation, and the update (the step less its preparation).
    static func runTRLGRPO(_ out: BenchOutput, name: String, precision: Precision) throws {
        let cfg = ModelConfig.preset(name)!
        let json = String(decoding: try JSONEncoder().encode(cfg), as: UTF8.self)
        let data = try runPython(
            trlGRPOScript, arguments: [json, precision.rawValue, String(Parallel.threadCount)],
            env: ["TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"], flag: "--trl",
            needs: "torch, transformers, datasets and trl")
        guard
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{\"trl\"") }),
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let total = obj["iteration_s"] as? Double
        else { throw RuntimeError("--trl: the TRL script printed no result") }
        let tag = "trl grpo \(name)" + (precision == .bf16 ? " bf16" : "")
        let common: [String: Any] = [
            "what": "grpo", "impl": "trl", "config": label(name), "precision": precision.rawValue, "prompts": 16, "group": 4, "new": 48,
            "num_iterations": 1, "beta": 0, "trl": obj["trl"] as? String ?? "", "torch": obj["torch"] as? String ?? "",
            "torch_cpu_capability": obj["cpu_capability"] as? String ?? "",
        ]
        for phase in ["generation", "scoring", "other_preparation", "update"] {
            guard let secs = obj[phase + "_s"] as? Double else { continue }
            out.emit(
                common.merging(["phase": phase, "seconds": secs]) { $1 },
                text: "\(tag) \(phase.replacingOccurrences(of: "_", with: " "))".column(38) + String(format: "%.3f s", secs))
        }
        let versions = "trl \(obj["trl"] as? String ?? "?"), torch \(obj["torch"] as? String ?? "?")"
        out.emit(
            common.merging(["phase": "total", "seconds": total, "iteration_s": total]) { $1 },
            text: "\(tag) iteration total".column(38) + String(format: "%.3f s", total) + " (\(versions))")
    }

    /// The TRL timing script: argv is the configuration's JSON, the precision, the thread count.
    static let trlGRPOScript = """
        import json, sys, time, contextlib, statistics
        import torch

        torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
        torch.manual_seed(0)
        import transformers, trl, datasets
        from transformers import (LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, Qwen2Config, Qwen2ForCausalLM,
                                  Qwen2ForSequenceClassification, PreTrainedTokenizerFast, TrainerCallback)
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders
        import trl.extras.profiling as profiling

        c = json.loads(sys.argv[1])
        bf16 = sys.argv[2] == "bf16"
        V = c["vocab_size"]
        kw = {} if c["model_type"] == "gpt2" else dict(hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
                  num_key_value_heads=c["num_key_value_heads"], head_dim=c["head_dim"], intermediate_size=c["intermediate_size"],
                  max_position_embeddings=c["max_position_embeddings"], vocab_size=V, rms_norm_eps=c["rms_norm_eps"],
                  rope_theta=c["rope_theta"], tie_word_embeddings=c["tie_word_embeddings"], rope_scaling=c.get("rope_scaling"),
                  bos_token_id=2, eos_token_id=0, pad_token_id=1)
        if c["model_type"] == "gpt2":
            from transformers import GPT2Config, GPT2LMHeadModel, GPT2ForSequenceClassification
            gk = dict(n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"], n_positions=c["n_positions"], vocab_size=V,
                      layer_norm_epsilon=c["layer_norm_epsilon"], resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=2, eos_token_id=0,
                      pad_token_id=1)
            policy = GPT2LMHeadModel(GPT2Config(**gk)).float()
            reward = GPT2ForSequenceClassification(GPT2Config(num_labels=1, **gk)).float()
        elif c["model_type"] == "qwen2":
            policy = Qwen2ForCausalLM(Qwen2Config(use_sliding_window=False, **kw)).float()
            reward = Qwen2ForSequenceClassification(Qwen2Config(use_sliding_window=False, num_labels=1, **kw)).float()
        else:
            policy = LlamaForCausalLM(LlamaConfig(**kw)).float()
            reward = LlamaForSequenceClassification(LlamaConfig(num_labels=1, **kw)).float()

        # A word-level tokenizer with one word per token id, so that every sampled id decodes to a word and
        # encodes back to the same id: the reward model scores exactly the tokens the policy wrote.
        tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(V)}, unk_token="w3"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w0", pad_token="w1", bos_token="w2", unk_token="w3")
        tokenizer.padding_side = "left"

        g = torch.Generator().manual_seed(7)
        prompts = []
        for _ in range(16):
            n = 8 + int(torch.randint(0, 17, (1,), generator=g))
            prompts.append(" ".join(f"w{int(i)}" for i in torch.randint(4, V, (n,), generator=g)))
        data = datasets.Dataset.from_dict({"prompt": prompts * 8})

        # Every ProfilingContext TRL opens (generation, reward, log-probabilities, loss) adds its time here.
        spent = {}
        def log_metrics(self, duration):
            spent[self.name] = spent.get(self.name, 0.0) + duration
        profiling.ProfilingContext._log_metrics = log_metrics

        steps = []
        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                spent.clear(); self.t = time.perf_counter()
            def on_step_end(self, args, state, control, **kw):
                steps.append((time.perf_counter() - self.t, dict(spent)))

        args = trl.GRPOConfig(
            output_dir="/tmp/rlhf-trl-grpo", use_cpu=True, bf16=bf16, per_device_train_batch_size=64, gradient_accumulation_steps=1,
            steps_per_generation=1, num_generations=4, max_completion_length=48, num_iterations=1, beta=0.0, max_steps=3,
            learning_rate=1e-6, logging_steps=1000, save_strategy="no", report_to=[], temperature=1.0, top_p=1.0, top_k=0,
            dataloader_num_workers=0, disable_tqdm=True, seed=0)
        trainer = trl.GRPOTrainer(model=policy, reward_funcs=reward, args=args, train_dataset=data, processing_class=tokenizer,
                                  reward_processing_classes=tokenizer, callbacks=[Timer()])
        trainer.train()
        timed = steps[1:]
        total = statistics.median(t for t, _ in timed)
        def phase(names):
            return statistics.median(sum(p.get("GRPOTrainer." + n, 0.0) for n in names) for _, p in timed)
        gen = phase(["transformers.generate"])
        prep = phase(["_prepare_inputs"])
        rew = phase(["_calculate_rewards"])
        print(json.dumps({"trl": trl.__version__, "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "iteration_s": round(total, 3), "generation_s": round(gen, 3), "scoring_s": round(rew, 3),
                          "other_preparation_s": round(prep - gen - rew, 3), "update_s": round(total - prep, 3),
                          "steps": [round(t, 3) for t, _ in steps]}), flush=True)
        """
}
