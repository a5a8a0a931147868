import Foundation
import XCTest

@testable import TransformerCore

/// Hugging Face GPT-2 folders against transformers: logits and greedy continuations of a tiny
/// random GPT-2 saved with `save_pretrained` (Fixtures/hf/make_hf_fixtures.py).
final class ModelFolderTests: XCTestCase {
    func logits(_ model: TransformerModel, _ ids: [Int32]) -> [Float] {
        let batch = TokenBatch(tokens: ids, batch: 1, length: ids.count)
        let acts = Activations(config: model.config, batch: 1, length: ids.count)
        model.forward(batch, acts)
        return Array(UnsafeBufferPointer(start: acts.logits.pointer, count: ids.count * model.config.vocabSize))
    }

    func testLogitsMatchTransformers() throws {
        let m = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        XCTAssertEqual(m.model.config, ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 64, vocabSize: 700))
        XCTAssertFalse(m.model.hasScalarHead)
        for c in hfGolden["logits"] as! [[String: Any]] {
            let ids = int32s(c["ids"])
            let expected = (c["logits"] as! [[NSNumber]]).flatMap { $0.map(\.floatValue) }
            XCTAssertLessThanOrEqual(maxAbsDiff(logits(m.model, ids), expected), 1e-4, "ids \(ids)")
        }
    }

    func testGreedyContinuationsMatchTransformers() throws {
        let m = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let gen = Generator(model: m.model)
        for c in hfGolden["greedy"] as! [[String: Any]] {
            var rng = SeededRandom(seed: 1)
            let prompt = int32s(c["prompt_ids"])
            let out = gen.generate(
                prompts: [prompt], maxNewTokens: 20, settings: SamplingSettings(greedy: true),
                eos: m.tokenizer.eosId, pad: 0, rng: &rng)
            XCTAssertEqual(out[0].tokens, int32s(c["continuation"]), "prompt \(prompt)")
        }
    }

    func testLegacyNamesTiedHeadAndMaskBuffersLoadTheSameWeights() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let b = try ModelFolder.load(fixtureURL("hf/tiny-gpt2-legacy"))
        for slot in a.model.layout.slots {
            XCTAssertEqual(Array(a.model.tensor(slot.name)), Array(b.model.tensor(slot.name)), slot.name)
        }
    }

    func testExportThenReloadIsIdentical() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let dir = temporaryFolder().appendingPathComponent("export")
        try ModelFolder.save(a.model, tokenizer: a.tokenizer, annotations: ModelAnnotations(promptTemplate: "Q: {prompt}\nA:"), to: dir)
        let b = try ModelFolder.load(dir)
        XCTAssertEqual(b.model.config, a.model.config)
        for slot in a.model.layout.slots {
            XCTAssertEqual(Array(a.model.tensor(slot.name)), Array(b.model.tensor(slot.name)), slot.name)
        }
        XCTAssertEqual(b.annotations.promptTemplate, "Q: {prompt}\nA:")
        for c in hfGolden["tokenizer"] as! [[String: Any]] {
            let t = c["text"] as! String
            XCTAssertEqual(b.tokenizer.encode(t), a.tokenizer.encode(t))
        }
        // Saving again over an existing folder replaces it cleanly.
        try ModelFolder.save(b.model, tokenizer: b.tokenizer, to: dir)
        XCTAssertNil(try ModelFolder.load(dir).annotations.promptTemplate)
        let siblings = try FileManager.default.contentsOfDirectory(atPath: dir.deletingLastPathComponent().path)
        XCTAssertEqual(siblings, ["export"])
    }

    /// Fixtures/hf/export_check.json records what transformers saw when it loaded this very export
    /// (`make_hf_fixtures.py --check-export`): the file hashes and its logits. The export must
    /// still produce those bytes, and the core must compute those logits.
    func testExportLoadsInTransformers() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let dir = temporaryFolder().appendingPathComponent("export")
        try ModelFolder.save(a.model, tokenizer: a.tokenizer, to: dir)
        if let keep = ProcessInfo.processInfo.environment["RLHF_KEEP_EXPORT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(at: dir, to: URL(fileURLWithPath: keep))
        }
        let data = try Data(contentsOf: fixtureURL("hf/export_check.json"))
        let check = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for (file, sha) in check["sha256"] as! [String: String] {
            XCTAssertEqual(try SHA256.hex(of: dir.appendingPathComponent(file)), sha, file)
        }
        XCTAssertTrue((check["tokenizer_class"] as? String ?? "").hasPrefix("GPT2Tokenizer"))
        for c in check["cases"] as! [[String: Any]] {
            XCTAssertEqual(Array(a.tokenizer.encode(c["text"] as! String).prefix(40)), int32s(c["ids"]), "the script keeps the first 40 ids")
            let expected = (c["logits"] as! [[NSNumber]]).flatMap { $0.map(\.floatValue) }
            XCTAssertLessThanOrEqual(maxAbsDiff(logits(a.model, int32s(c["ids"])), expected), 1e-4)
        }
    }

    func testScalarHeadRoundTrip() throws {
        let cfg = ModelConfig(nLayer: 1, nHead: 2, nEmbd: 16, nCtx: 16, vocabSize: 300)
        let model = randomModel(cfg, seed: 3, scalarHead: true)
        let tok = try BPETrainer.train(corpus: "a b c", vocabSize: 258)
        let dir = temporaryFolder().appendingPathComponent("rm")
        try ModelFolder.save(model, tokenizer: tok, annotations: ModelAnnotations(rewardGain: 2.5, rewardBias: -0.25), to: dir)
        let back = try ModelFolder.load(dir)
        XCTAssertTrue(back.model.hasScalarHead)
        XCTAssertEqual(Array(back.model.tensor("score.weight")), Array(model.tensor("score.weight")))
        XCTAssertEqual(Array(back.model.tensor("score.bias")), Array(model.tensor("score.bias")))
        XCTAssertEqual(back.annotations.rewardGain, 2.5); XCTAssertEqual(back.annotations.rewardBias, -0.25)
    }

    func testUnsupportedConfigurationsAreRefused() throws {
        let src = fixtureURL("hf/tiny-gpt2")
        let cases: [(String, Any, String)] = [
            ("activation_function", "relu", "activation_function relu"),
            ("tie_word_embeddings", false, "tie_word_embeddings"),
            ("model_type", "mistral", "model_type mistral"),
            ("architectures", ["LlamaForCausalLM"], "LlamaForCausalLM"),
            ("n_inner", 100, "n_inner"),
            ("scale_attn_by_inverse_layer_idx", true, "scale_attn_by_inverse_layer_idx"),
            ("n_head", 3, "divisible"),
        ]
        try assertConfigEditsRefused(src, cases)
    }

    func testUntiedHeadAndMissingTensorsAreRefused() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let dir = temporaryFolder()
        try FileManager.default.copyItem(at: fixtureURL("hf/tiny-gpt2/config.json"), to: dir.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: fixtureURL("hf/tiny-gpt2/tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        var head = Array(a.model.tensor("wte.weight"))
        head[5] += 1
        let weights = dir.appendingPathComponent("model.safetensors")
        func write(dropping: String) throws {
            let outs = a.model.layout.slots.filter { $0.name != dropping }
                .map { SafeTensorsOutput(name: $0.name, shape: $0.shape, data: UnsafeBufferPointer(a.model.tensor($0.name))) }
            try SafeTensorsWriter.write(outs, to: weights)
        }
        try head.withUnsafeBufferPointer { p in
            var outs = a.model.layout.slots.map {
                SafeTensorsOutput(name: $0.name, shape: $0.shape, data: UnsafeBufferPointer(a.model.tensor($0.name)))
            }
            outs.append(SafeTensorsOutput(name: "lm_head.weight", shape: [700, 32], data: p))
            try SafeTensorsWriter.write(outs, to: weights)
        }
        XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains("untied"), "\(e)") }
        try write(dropping: "h.1.mlp.c_fc.bias")
        XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains("missing tensor h.1.mlp.c_fc.bias"), "\(e)") }
        try FileManager.default.removeItem(at: weights)
        try Data().write(to: dir.appendingPathComponent("pytorch_model.bin"))
        XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains("pytorch_model.bin"), "\(e)") }
    }

    /// Writes the tiny GPT-2's tensors, under their Hugging Face names, as `shards` shards with an
    /// index into a new folder beside its config and tokenizer; returns the folder and the index.
    func shardedCopy(shards: Int) throws -> (URL, [String: String]) {
        let src = fixtureURL("hf/tiny-gpt2")
        let dir = temporaryFolder()
        for f in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let file = try SafeTensorsFile(url: src.appendingPathComponent("model.safetensors"))
        let values = try file.names.map { try file.floats($0) }
        var map: [String: String] = [:]
        for s in 0..<shards {
            let shard = String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)
            let mine = file.names.indices.filter { $0 % shards == s }
            let outs = mine.map { i in
                values[i].withUnsafeBufferPointer { SafeTensorsOutput(name: file.names[i], shape: file.entries[file.names[i]]!.shape, data: $0) }
            }
            try SafeTensorsWriter.write(outs, to: dir.appendingPathComponent(shard))
            for i in mine { map[file.names[i]] = shard }
        }
        try writeIndex(map, in: dir)
        return (dir, map)
    }

    func writeIndex(_ map: [String: Any], in dir: URL) throws {
        let index: [String: Any] = ["metadata": ["total_size": 0], "weight_map": map]
        try JSONSerialization.data(withJSONObject: index).write(to: dir.appendingPathComponent(WeightFiles.indexFile))
    }

    func testShardedWeightsLoadAsTheSingleFileDoes() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let (dir, _) = try shardedCopy(shards: 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path))
        let b = try ModelFolder.load(dir)
        XCTAssertEqual(b.model.config, a.model.config)
        for slot in a.model.layout.slots {
            XCTAssertEqual(Array(a.model.tensor(slot.name)), Array(b.model.tensor(slot.name)), slot.name)
        }
        XCTAssertEqual(try WeightFiles.open(folder: dir).shardNames.count, 3)
    }

    /// An index is data: shards outside the folder, missing shards, a tensor in the wrong shard
    /// or in two, and malformed maps are refused with a line naming the problem.
    func testHostileShardIndexesAreRefused() throws {
        let (dir, map) = try shardedCopy(shards: 2)
        let first = map.keys.sorted()[0], shard = map[first]!
        let other = Set(map.values).subtracting([shard]).first!
        let cases: [([String: Any], String)] = [
            (map.merging([first: "../\(shard)"]) { $1 }, "not a plain .safetensors file name"),
            (map.merging([first: "/etc/passwd"]) { $1 }, "not a plain .safetensors file name"),
            (map.merging([first: ".hidden.safetensors"]) { $1 }, "not a plain .safetensors file name"),
            (map.merging([first: "model-00009-of-00009.safetensors"]) { $1 }, "which is missing"),
            (map.merging([first: other]) { $1 }, "is not in \(other)"),
            ((map as [String: Any]).merging([first: 7]) { $1 }, "is not a string"),
            ([:], "the weight_map is empty"),
        ]
        for (m, expected) in cases {
            try writeIndex(m, in: dir)
            XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains(expected), "\(expected): \(e)") }
        }
        // The same tensor in two shards.
        try writeIndex(map, in: dir)
        let dup = try SafeTensorsFile(url: dir.appendingPathComponent(shard))
        let values = try dup.floats(first)
        try values.withUnsafeBufferPointer { p in
            try SafeTensorsWriter.write(
                [SafeTensorsOutput(name: first, shape: dup.entries[first]!.shape, data: p)], to: dir.appendingPathComponent("extra.safetensors"))
        }
        try writeIndex(map.merging(["extra-tensor-name": "extra.safetensors"]) { $1 }, in: dir)
        XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains("is in both"), "\(e)") }
        try "{\"weight_map\": [1, 2]}".write(to: dir.appendingPathComponent(WeightFiles.indexFile), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelFolder.load(dir)) { e in XCTAssertTrue("\(e)".contains("no \"weight_map\" object"), "\(e)") }
    }

    /// Sharded export: shards of at most the given size (a larger tensor alone), an index whose
    /// total_size is the tensors' bytes, and a reload identical to the model.
    func testShardedSaveReloadsIdentically() throws {
        let a = try ModelFolder.load(fixtureURL("hf/tiny-gpt2"))
        let dir = temporaryFolder().appendingPathComponent("sharded")
        try ModelFolder.save(a.model, tokenizer: a.tokenizer, to: dir, maxShardBytes: 20_000)
        let weights = try WeightFiles.open(folder: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path))
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(WeightFiles.indexFile))) as! [String: Any]
        let total = (index["metadata"] as! [String: Any])["total_size"] as! Int
        XCTAssertEqual(total, a.model.layout.slots.reduce(0) { $0 + $1.count * 4 })
        XCTAssertEqual(
            weights.shardNames.count, (index["weight_map"] as! [String: String]).values.reduce(into: Set<String>()) { $0.insert($1) }.count)
        XCTAssertGreaterThan(weights.shardNames.count, 3)
        for name in weights.shardNames {
            let f = try SafeTensorsFile(url: dir.appendingPathComponent(name))
            let bytes = f.entries.values.reduce(0) { $0 + $1.byteRange.count }
            XCTAssertTrue(bytes <= 20_000 || f.names.count == 1, "\(name): \(bytes) bytes in \(f.names.count) tensors")
            XCTAssertTrue(name.hasSuffix("-of-\(String(format: "%05d", weights.shardNames.count)).safetensors"), name)
        }
        let b = try ModelFolder.load(dir)
        for slot in a.model.layout.slots {
            XCTAssertEqual(Array(a.model.tensor(slot.name)), Array(b.model.tensor(slot.name)), slot.name)
        }
        // The same shards, file names and total_size as huggingface_hub's splitter gives for
        // these tensors (Fixtures/hf/make_shard_reference.py).
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("hf/shard_reference.json"))) as! [String: Any]
        XCTAssertEqual(reference["max_shard_size"] as? Int, 20_000)
        XCTAssertEqual(index["weight_map"] as! [String: String], reference["weight_map"] as! [String: String])
        XCTAssertEqual(total, reference["total_size"] as? Int)
        // Saved again without a limit, the folder holds one file and no index.
        try ModelFolder.save(a.model, tokenizer: a.tokenizer, to: dir)
        XCTAssertEqual(try WeightFiles.open(folder: dir).shardNames, ["model.safetensors"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(WeightFiles.indexFile).path))
    }
}
