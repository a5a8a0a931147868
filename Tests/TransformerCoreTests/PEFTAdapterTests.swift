import Foundation
import XCTest

@testable import TransformerCore

/// PEFT LoRA folders made by the `peft` library (Fixtures/peft/make_peft_fixtures.py): the base
/// with the adapter gives PeftModel's logits, on every kernel path; a folder written here reads
/// back the same and has PEFT's tensor names and shapes; what this code cannot compute is refused.
final class PEFTAdapterTests: EveryPathTestCase {
    static let peft = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/peft")

    func testPeftAdaptersGivePeftModelsLogits() throws {
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.peft.appendingPathComponent("peft_reference.json"))) as! [String: Any]
        XCTAssertEqual(ref.count, 3)
        for (name, value) in ref.sorted(by: { $0.key < $1.key }) {
            let r = value as! [String: Any]
            let folder = Self.peft.appendingPathComponent(name)
            let cfgBase =
                try JSONText.object(Data(contentsOf: folder.appendingPathComponent("adapter_config.json")), "adapter")["base_model_name_or_path"]
                as! String
            let base = try ModelFolder.load(Self.peft.appendingPathComponent(cfgBase).standardizedFileURL)
            let lora = try PEFTAdapter.load(folder, config: base.model.config)
            let tokens = (r["tokens"] as! [[Int]]).map { $0.map(Int32.init) }
            let expected = (r["logits"] as! [[[Double]]]).flatMap { $0.flatMap { $0.map(Float.init) } }
            let batch = TokenBatch(leftPadding: tokens, pad: 0)
            let acts = Activations(config: base.model.config, batch: batch.batch, length: batch.length)
            forEachPath {
                base.model.lora = nil
                base.model.forward(batch, acts)
                XCTAssertGreaterThan(maxAbsDiff(acts.logits.array, expected), 1e-2, "\(name): the adapter matters")
                base.model.lora = lora
                base.model.forward(batch, acts)
                XCTAssertLessThanOrEqual(maxAbsDiff(acts.logits.array, expected), 1e-4, "\(name): logits against PeftModel")
            }

            // Written here, read back: the same matrices, under PEFT's names and shapes.
            let out = temporaryFolder().appendingPathComponent("adapter")
            try PEFTAdapter.save(lora, to: out, baseModel: cfgBase)
            // For check_peft_export.py: the folders as written here, to load with PeftModel.
            if let keep = ProcessInfo.processInfo.environment["RLHF_KEEP_PEFT"] {
                try PEFTAdapter.save(lora, to: URL(fileURLWithPath: keep).appendingPathComponent(name), baseModel: cfgBase)
            }
            let again = try PEFTAdapter.load(out, config: base.model.config)
            XCTAssertEqual(again.parameters.array, lora.parameters.array)
            XCTAssertEqual(again.config, lora.config)
            let theirs = try SafeTensorsFile(url: folder.appendingPathComponent(PEFTAdapter.weightsFile))
            let ours = try SafeTensorsFile(url: out.appendingPathComponent(PEFTAdapter.weightsFile))
            XCTAssertEqual(Set(ours.names), Set(theirs.names), name)
            for n in theirs.names { XCTAssertEqual(ours.entries[n]?.shape, theirs.entries[n]?.shape, n) }
        }
    }

    func testWhatThisCodeCannotComputeIsRefused() throws {
        let src = Self.peft.appendingPathComponent("llama-lora")
        let base = try ModelFolder.readConfig(Self.peft.appendingPathComponent("../hf/arch/llama-tiny").standardizedFileURL).0
        let original = try JSONText.object(Data(contentsOf: src.appendingPathComponent("adapter_config.json")), "adapter")
        let cases: [(String, Any, String)] = [
            ("peft_type", "IA3", "only LORA"), ("use_dora", true, "DoRA"), ("use_rslora", true, "rsLoRA"),
            ("bias", "all", "bias \"all\""), ("rank_pattern", ["q_proj": 8], "rank_pattern"),
            ("modules_to_save", ["lm_head"], "only as the scalar head"),
            ("modules_to_save", ["score"], "no tensor base_model.model.score.weight"), ("r", 4096, "more than the"),
            ("layers_to_transform", [0], "layers_to_transform"), ("target_modules", ".*q_proj", "regular expression"),
            ("target_modules", ["q_proj", "c_attn"], "c_attn is not a projection"), ("r", 2, "has shape"), ("r", 8, "its file holds"),
            ("r", 0, "rank from 1"),
            ("target_modules", ["q_proj"], "is not a LoRA matrix"),
        ]
        for (key, value, needle) in cases {
            let dir = temporaryFolder()
            try FileManager.default.copyItem(
                at: src.appendingPathComponent(PEFTAdapter.weightsFile), to: dir.appendingPathComponent(PEFTAdapter.weightsFile))
            var cfg = original
            cfg[key] = value
            try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent(PEFTAdapter.configFile))
            XCTAssertThrowsError(try PEFTAdapter.load(dir, config: base), key) { XCTAssertTrue("\($0)".contains(needle), "\(key): \($0)") }
        }
        XCTAssertThrowsError(try PEFTAdapter.load(temporaryFolder(), config: base)) {
            XCTAssertTrue("\($0)".contains("no adapter_config.json"), "\($0)")
        }
    }

    /// Adapters with a scalar head of their own (a reward or value model's) round-trip through
    /// a PEFT sequence-classification folder: `modules_to_save` ["score"], the head as
    /// `base_model.model.score.weight` and `.bias`.
    func testAdaptersWithAHeadRoundTrip() throws {
        let cfg = try ModelFolder.readConfig(Self.peft.appendingPathComponent("../hf/arch/llama-tiny").standardizedFileURL).0
        let lora = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: ["q_proj", "down_proj"]), model: cfg, scalarHead: true)
        var rng = SeededRandom(seed: 3)
        for i in 0..<lora.parameters.count { lora.parameters.pointer[i] = rng.normal() }
        let dir = temporaryFolder().appendingPathComponent("rm")
        try PEFTAdapter.save(lora, to: dir, baseModel: "../base")
        let config = try JSONText.object(Data(contentsOf: dir.appendingPathComponent(PEFTAdapter.configFile)), "adapter")
        XCTAssertEqual(config["task_type"] as? String, "SEQ_CLS")
        XCTAssertEqual(config["modules_to_save"] as? [String], ["score"])
        let back = try PEFTAdapter.load(dir, config: cfg)
        XCTAssertEqual(back.parameters.array, lora.parameters.array)
        XCTAssertEqual(Array(back.head!), Array(lora.head!))
    }
}
