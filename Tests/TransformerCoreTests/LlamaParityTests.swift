import Foundation
import XCTest

@testable import TransformerCore

/// Llama-family folders against transformers: tiny random `LlamaForCausalLM` (grouped-query
/// attention, untied head, llama3 rotary scaling), `Qwen2ForCausalLM` (q/k/v biases, tied) and
/// `LlamaForSequenceClassification`, saved in bf16 and sharded by `save_pretrained`
/// (Fixtures/hf/arch/make_arch_fixtures.py). Checked on every kernel path.
final class LlamaParityTests: EveryPathTestCase {
    static let reference: [String: Any] = {
        let data = try! Data(contentsOf: fixtureURL("hf/arch/arch_reference.json"))
        return (try! JSONSerialization.jsonObject(with: data) as! [String: Any])["models"] as! [String: Any]
    }()

    func ref(_ name: String) -> [String: Any] { Self.reference[name] as! [String: Any] }
    func floats(_ v: Any?) -> [Float] { (v as! [NSNumber]).map(\.floatValue) }

    func forward(_ model: TransformerModel, _ batch: TokenBatch) -> Activations {
        let acts = Activations(config: model.config, batch: batch.batch, length: batch.length)
        model.forward(batch, acts)
        return acts
    }

    func testConfigsAreReadAsTransformersWritesThem() throws {
        let (llama, _) = try ModelFolder.readConfig(fixtureURL("hf/arch/llama-tiny"))
        XCTAssertEqual(
            llama,
            ModelConfig(
                llama: .llama, nLayer: 2, nHead: 4, nKVHead: 2, nEmbd: 64, headDim: 16, intermediateSize: 96,
                nCtx: 128, vocabSize: 608, rmsNormEpsilon: 1e-5, ropeTheta: 500000,
                ropeScaling: RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16),
                tieWordEmbeddings: false))
        let (qwen, _) = try ModelFolder.readConfig(fixtureURL("hf/arch/qwen2-tiny"))
        XCTAssertEqual(
            qwen,
            ModelConfig(
                llama: .qwen2, nLayer: 2, nHead: 4, nKVHead: 2, nEmbd: 64, intermediateSize: 128,
                nCtx: 128, vocabSize: 606, rmsNormEpsilon: 1e-6, ropeTheta: 1000000, tieWordEmbeddings: true))
        XCTAssertTrue(qwen.attentionBias)
        // The rotary frequencies, llama3 scaling included, are transformers' float32 ones.
        for (name, cfg) in [("llama-tiny", llama), ("qwen2-tiny", qwen)] {
            let expected = floats(ref(name)["inv_freq"])
            let ours = cfg.ropeInverseFrequencies.map { Float($0) }
            XCTAssertEqual(ours.count, expected.count)
            for (a, b) in zip(ours, expected) { XCTAssertEqual(a, b, accuracy: b * 1e-6, name) }
        }
    }

    func testLogProbsAndLogitsMatchTransformers() throws {
        for name in ["llama-tiny", "qwen2-tiny"] {
            let m = try ModelFolder.load(fixtureURL("hf/arch/\(name)"))
            XCTAssertEqual(m.annotations.sourceDType, .BF16, name)
            let v = m.model.config.vocabSize
            forEachPath {
                for c in ref(name)["cases"] as! [[String: Any]] {
                    let ids = int32s(c["ids"])
                    let acts = forward(m.model, TokenBatch(tokens: ids, batch: 1, length: ids.count))
                    let last = Array(UnsafeBufferPointer(start: acts.logits.pointer + (ids.count - 1) * v, count: v))
                    XCTAssertLessThanOrEqual(maxAbsDiff(last, floats(c["last_logits"])), 1e-4, "\(name) T=\(ids.count)")
                    let targets = Array(ids.dropFirst()) + [-1]
                    let lp = Array(LogitHeads.targetLogProbs(acts, targets: targets).dropLast())
                    XCTAssertLessThanOrEqual(maxAbsDiff(lp, floats(c["token_logprobs"])), 1e-4, "\(name) T=\(ids.count)")
                    var sumAbs = 0.0
                    for i in 0..<ids.count * v { sumAbs += Double(abs(acts.logits[i])) }
                    let expected = (c["logits_sum_abs"] as! NSNumber).doubleValue
                    XCTAssertEqual(sumAbs, expected, accuracy: expected * 1e-5, "\(name) T=\(ids.count)")
                }
            }
        }
    }

    /// Left padding with transformers' position ids (cumsum of the mask − 1).
    func testLeftPaddedBatchMatchesTransformers() throws {
        for name in ["llama-tiny", "qwen2-tiny"] {
            let m = try ModelFolder.load(fixtureURL("hf/arch/\(name)"))
            let p = ref(name)["padded_batch"] as! [String: Any]
            let rows = (p["ids"] as! [Any]).map(int32s)
            let lengths = (p["lengths"] as! [NSNumber]).map(\.intValue)
            let seqs = zip(rows, lengths).map { Array($0.suffix($1)) }
            let batch = TokenBatch(leftPadding: seqs, pad: 0)
            XCTAssertEqual(batch.tokens, rows.flatMap { $0 })
            XCTAssertEqual(batch.mask.map(Int32.init), (p["attention_mask"] as! [Any]).flatMap(int32s))
            XCTAssertEqual(batch.positions, (p["position_ids"] as! [Any]).flatMap(int32s))
            let expected = (p["last_logits"] as! [Any]).map(floats)
            let v = m.model.config.vocabSize, t = batch.length
            forEachPath {
                let acts = forward(m.model, batch)
                for b in 0..<2 {
                    let row = Array(UnsafeBufferPointer(start: acts.logits.pointer + (b * t + t - 1) * v, count: v))
                    XCTAssertLessThanOrEqual(maxAbsDiff(row, expected[b]), 1e-4, "\(name) row \(b)")
                }
            }
        }
    }

    /// Greedy continuations with the KV cache equal `generate(do_sample=False)`, and generation
    /// stops at any of the config's end-of-sequence ids.
    func testGreedyContinuationsAndStopTokensMatchTransformers() throws {
        for name in ["llama-tiny", "qwen2-tiny"] {
            let m = try ModelFolder.load(fixtureURL("hf/arch/\(name)"))
            let greedy = ref(name)["greedy"] as! [String: Any]
            let withEos = greedy["with_eos"] as! [String: Any]
            let stops = int32s((withEos["generate_kwargs"] as! [String: Any])["eos_token_id"])
            forEachPath {
                let gen = Generator(model: m.model)
                for run in greedy["runs"] as! [[String: Any]] {
                    var rng = SeededRandom(seed: 1)
                    let out = gen.generate(
                        prompts: [int32s(run["ids"])], maxNewTokens: 12, settings: SamplingSettings(greedy: true),
                        stopTokens: [], pad: 0, rng: &rng)
                    XCTAssertEqual(out[0].tokens, int32s(run["new_ids"]), name)
                }
                let stopping = withEos["stopping_run"] as! [String: Any]
                var rng = SeededRandom(seed: 1)
                let out = gen.generate(
                    prompts: [int32s(stopping["ids"])], maxNewTokens: 12, settings: SamplingSettings(greedy: true),
                    stopTokens: stops, pad: 0, rng: &rng)
                XCTAssertEqual(out[0].tokens, int32s(stopping["new_ids"]), name)
                XCTAssertEqual(out[0].finishReason, .eos, name)
                // The same prompt, batched beside a longer one (left padding in the cache).
                let long = int32s((greedy["runs"] as! [[String: Any]]).last!["ids"])
                let both = gen.generate(
                    prompts: [long, int32s(stopping["ids"])], maxNewTokens: 12, settings: SamplingSettings(greedy: true),
                    stopTokens: stops, pad: 0, rng: &rng)
                XCTAssertEqual(both[1].tokens, int32s(stopping["new_ids"]), "\(name), batched")
            }
        }
    }

    /// `score.weight` on the Llama trunk: the reward at the last token.
    func testSequenceClassificationScoreMatchesTransformers() throws {
        let m = try ModelFolder.load(fixtureURL("hf/arch/llama-tiny-reward"))
        XCTAssertTrue(m.model.hasScalarHead)
        let r = ref("llama-tiny-reward")
        let cases = ref("llama-tiny")["cases"] as! [[String: Any]]
        let expected = floats(r["rewards"])
        forEachPath {
            for (c, e) in zip(cases, expected) {
                let ids = int32s(c["ids"])
                let batch = TokenBatch(tokens: ids, batch: 1, length: ids.count)
                let acts = Activations(config: m.model.config, batch: 1, length: ids.count)
                m.model.forward(batch, acts, computeLogits: false)
                XCTAssertEqual(m.model.lastTokenValues(batch, acts)[0], e, accuracy: 1e-4, "T=\(ids.count)")
            }
        }
    }

    /// Export writes what it read: bf16 in, bf16 out (exact, the values are bf16), sharded or
    /// not, with the same config, and the reloaded model gives the same logits.
    func testExportRoundTripKeepsWeightsAndConfig() throws {
        for name in ["llama-tiny", "qwen2-tiny", "llama-tiny-reward"] {
            let m = try ModelFolder.load(fixtureURL("hf/arch/\(name)"))
            for shard in [nil, 60_000] as [Int?] {
                let dir = temporaryFolder().appendingPathComponent("out")
                let files = try ModelFolder.save(
                    m.model, tokenizer: m.tokenizer, annotations: m.annotations, to: dir,
                    maxShardBytes: shard, dtype: m.annotations.sourceDType ?? .F32)
                XCTAssertEqual(files > 1, shard != nil, name)
                let back = try ModelFolder.load(dir)
                XCTAssertEqual(back.model.config, m.model.config, name)
                XCTAssertEqual(back.model.hasScalarHead, m.model.hasScalarHead, name)
                XCTAssertEqual(back.annotations.sourceDType, m.annotations.sourceDType, name)
                for slot in m.model.layout.slots {
                    XCTAssertEqual(Array(back.model.tensor(slot.name)), Array(m.model.tensor(slot.name)), "\(name) \(slot.name)")
                }
                let cfg = try JSONText.object(Data(contentsOf: dir.appendingPathComponent("config.json")), "config")
                XCTAssertEqual(cfg["model_type"] as? String, m.model.config.architecture.rawValue)
                XCTAssertEqual(cfg["tie_word_embeddings"] as? Bool, m.model.config.tieWordEmbeddings)
                let weights = try WeightFiles.open(folder: dir)
                XCTAssertEqual(weights.names.contains("lm_head.weight"), name == "llama-tiny", name)
                XCTAssertEqual(weights.names.contains("score.weight"), name == "llama-tiny-reward", name)
            }
        }
    }

    func testUnsupportedLlamaFieldsAreRefusedByName() throws {
        let src = fixtureURL("hf/arch/llama-tiny")
        let cases: [(String, Any, String)] = [
            ("model_type", "mistral", "model_type mistral"),
            ("hidden_act", "gelu", "hidden_act gelu"),
            ("mlp_bias", true, "mlp_bias"),
            ("attention_bias", true, "attention_bias"),
            ("use_sliding_window", true, "use_sliding_window"),
            ("rope_parameters", ["rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0], "rope_scaling type yarn"),
            ("num_key_value_heads", 3, "num_key_value_heads"),
            ("layer_types", ["sliding_attention", "full_attention"], "layer_types"),
            ("architectures", ["MistralForCausalLM"], "MistralForCausalLM"),
            ("max_position_embeddings", 1 << 19, "max_position_embeddings"),
        ]
        try assertConfigEditsRefused(src, cases)
    }
}
