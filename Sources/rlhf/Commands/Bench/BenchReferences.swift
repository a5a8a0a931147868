import Foundation
import TransformerCore

/// `rlhf bench --torch` and `--numpy`: the same measurements by PyTorch and numpy, in this run,
/// through embedded Python scripts.
extension BenchCommand {
    /// PyTorch on the same train and generate measurements as `benchTrain`/`benchGenerate`, in
    /// this run: the model class transformers has for the configuration, fp32, the same shapes;
    /// in `bf16`, under `torch.autocast("cpu", dtype=torch.bfloat16)`, PyTorch's mixed precision.
    static func runTorch(_ out: BenchOutput, name: String, train: Bool, generate: Bool, precision: Precision = .f32) throws {
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
            import contextlib
            def autocast():
                return torch.autocast("cpu", dtype=torch.bfloat16) if \(precision == .bf16 ? "True" : "False") else contextlib.nullcontext()
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
                    with autocast():
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
                    with torch.inference_mode(), autocast():
                        model.generate(prompts, attention_mask=mask, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                                       max_new_tokens=64, min_new_tokens=64, pad_token_id=0)
                s = best_of(gen, 1.0)
                print(json.dumps(dict(env, what="generate", tokens_per_s=round(8 * 64 / s, 2))), flush=True)
            """
        let data = try runPython(
            script, arguments: [json], env: ["TRANSFORMERS_VERBOSITY": "error"], flag: "--torch", needs: "torch and transformers")
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let what = obj["what"] as? String, let tps = obj["tokens_per_s"] as? Double
            else { continue }
            let versions = "torch \(obj["torch"] as? String ?? "?"), \(obj["cpu_capability"] as? String ?? "?")"
            var fields: [String: Any] = [
                "what": what, "impl": "torch", "config": label(name), "tokens_per_s": tps,
                "torch": obj["torch"] as? String ?? "", "torch_cpu_capability": obj["cpu_capability"] as? String ?? "",
                "precision": precision.rawValue,
            ]
            let mode = precision == .bf16 ? ", bf16 autocast" : ""
            if what == "train" {
                fields["B"] = b; fields["T"] = t
                out.emit(fields, text: "torch    \(label(name))  B×T \(b)×\(t)".column(34) + "\(fmt(tps)) tokens/s (\(versions)\(mode))")
            } else {
                fields["batch"] = 8; fields["prompt"] = 16; fields["new"] = 64
                out.emit(fields, text: "HF gen   \(label(name))  8×(16+64)".column(34) + "\(fmt(tps)) tokens/s (\(versions)\(mode))")
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
        guard p.terminationStatus == 0 else {
            throw RuntimeError("python3 with \(needs) failed for \(flag) (is it installed? RLHF_PYTHON picks the interpreter)")
        }
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
                let g = obj["gflops"] as? Double
            else { continue }
            out.emit(
                ["what": "matmul", "impl": "numpy", "precision": Precision.f32.rawValue, "m": m, "k": k, "n": n, "gflops": g],
                text: "numpy   \(m)×\(k)×\(n)".column(28) + "\(fmt(g)) GFLOPS")
        }
    }
}
