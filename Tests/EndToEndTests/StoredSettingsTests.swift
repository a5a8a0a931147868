import Foundation
import RunStore
import StageKit
import TransformerCore
import XCTest

@testable import Compare
@testable import DPO
@testable import Generation
@testable import PPO
@testable import RewardTraining

/// Every stage's settings, as stored in a run database written by rlhf 0.1.0 (before each stage's
/// settings became one `…Config` type), read back with today's types: what `--resume`, `rlhf
/// status` and the report read. The fixture and the commands that made it: Fixtures/README.md.
final class StoredSettingsTests: XCTestCase {
    var store: RunStore!

    override func setUpWithError() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/run-0.1.0.sqlite")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stored-settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixture, to: dir.appendingPathComponent(RunStore.databaseName))
        store = try RunStore(folder: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    }

    func run(_ id: Int64, _ stage: String) throws -> StageRunRecord {
        let r = try XCTUnwrap(try store.stageRuns(stage: stage).first { $0.id == id }, "stage run #\(id) (\(stage))")
        return r
    }

    func testGenerate() throws {
        var demo = GenerateConfig()
        demo.perPrompt = 6; demo.seed = 1
        XCTAssertEqual(try store.storedConfig(run(2, "generate"), as: GenerateConfig.self), demo)
        var later = GenerateConfig()
        later.limit = 2; later.again = true; later.maxNewTokens = 8; later.sampling.topK = 5; later.split = .eval
        XCTAssertEqual(try store.storedConfig(run(6, "generate"), as: GenerateConfig.self), later)
    }

    func testTrainReward() throws {
        var demo = RewardConfig()
        demo.learningRate = 1e-4; demo.learningRate *= 10; demo.seed = 1
        demo.lora = LoRAConfig(rank: 4, alpha: 8, targets: [])
        XCTAssertEqual(try store.storedConfig(run(3, "train-reward"), as: RewardConfig.self), demo)
        var later = RewardConfig()
        later.epochs = 1; later.margin = 0.5; later.validationFraction = Double(Float(0.2)); later.seed = 3
        XCTAssertEqual(try store.storedConfig(run(7, "train-reward"), as: RewardConfig.self), later)
    }

    func testPPO() throws {
        let demo = try store.storedConfig(run(4, "ppo"), as: PPOStage.StoredRun.self)
        var s = PPOConfig()
        s.iterations = 8; s.learningRate = 1e-4; s.learningRate *= 10; s.klCoef = 0.1; s.targetKL = 6; s.saveEvery = 8; s.seed = 1
        s.lora = LoRAConfig(rank: 4, alpha: 8, targets: [])
        XCTAssertEqual(demo.settings, s)
        XCTAssertEqual([demo.policyModelId, demo.referenceModelId, demo.rewardModelId], [2, 3, 4])
        let saved = try XCTUnwrap(try store.resumeState(4, as: PPOStage.SavedState.self))
        XCTAssertEqual([saved.iteration, Int(saved.policyModelId), Int(saved.valueModelId)], [8, 5, 6])
        XCTAssertEqual(saved.policyOptimizerSHA, "ab4e8421a8d05b7d739721eb633cbe2fb58a7c1ef12a7d3eaaab125be0f45c95")

        var t = PPOConfig()
        t.iterations = 1; t.batch = 4; t.minibatches = 2; t.responseLength = 8; t.targetKL = 6; t.missingEOSPenalty = nil
        t.whitenRewards = true; t.valueLearningRate = 3e-5
        XCTAssertEqual(try store.storedConfig(run(8, "ppo"), as: PPOStage.StoredRun.self).settings, t)
    }

    func testDPO() throws {
        let demo = try store.storedConfig(run(5, "dpo"), as: DPOStage.StoredRun.self)
        var o = DPOConfig()
        o.learningRate = 1e-4; o.seed = 1; o.policyModel = 2
        XCTAssertEqual(demo.options, o)
        XCTAssertEqual([demo.policyModelId, demo.referenceModelId], [2, 3])
        var t = DPOConfig()
        t.epochs = 1; t.objective.kind = .ipo; t.objective.beta = 0.2; t.policyModel = 1; t.saveEvery = 1000; t.batch = 64
        XCTAssertEqual(try store.storedConfig(run(9, "dpo"), as: DPOStage.StoredRun.self).options, t)
        let saved = try XCTUnwrap(try store.resumeState(9, as: DPOStage.SavedState.self))
        XCTAssertEqual([saved.step, Int(saved.policyModelId)], [6, 15])
    }

    func testCompare() throws {
        var c = CompareConfig()
        c.a = 2; c.b = 11; c.judge = "lexicon"; c.perPrompt = 1; c.maxNewTokens = 8
        XCTAssertEqual(try store.storedConfig(run(10, "compare"), as: CompareConfig.self), c)
    }

    /// What today's stages store reads back as the same settings, under the keys the stored JSON
    /// has always had.
    func testTodaysSettingsRoundTrip() throws {
        func check<C: Codable & Equatable>(_ config: C, stored: some Encodable, keys: Set<String>) throws {
            let json = try RunStore.json(stored)
            XCTAssertEqual(try JSONDecoder().decode(C.self, from: Data(json.utf8)), config)
            XCTAssertEqual(Set(try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]).keys), keys)
        }
        var g = GenerateConfig()
        g.limit = 3; g.split = nil; g.sampling.topP = 0.9; g.precision = .bf16
        try check(
            g, stored: GenerateStage.StoredRun(config: g, policyModelId: 7),
            keys: [
                "per_prompt", "max_new_tokens", "temperature", "top_k", "top_p", "greedy", "seed", "split", "limit", "again",
                "batch_size", "precision", "policy_model_id",
            ])
        var r = RewardConfig()
        r.initModel = "3"; r.frozenDType = .bf16; r.lora = LoRAConfig(rank: 2, alpha: 3, targets: ["c_attn"], dropout: 0.1)
        r.precision = .bf16
        try check(
            r, stored: r,
            keys: [
                "epochs", "lr", "batch", "seed", "val_fraction", "margin", "init", "max_grad_norm", "weight_decay",
                "micro_batch", "lora", "frozen_dtype", "precision",
            ])
    }

    /// Every stage stored before `--precision` existed reads back as f32.
    func testSettingsFromBeforePrecisionReadAsF32() throws {
        XCTAssertEqual(try store.storedConfig(run(2, "generate"), as: GenerateConfig.self).precision, .f32)
        XCTAssertEqual(try store.storedConfig(run(3, "train-reward"), as: RewardConfig.self).precision, .f32)
        XCTAssertEqual(try store.storedConfig(run(4, "ppo"), as: PPOStage.StoredRun.self).settings.precision, .f32)
        XCTAssertEqual(try store.storedConfig(run(5, "dpo"), as: DPOStage.StoredRun.self).options.precision, .f32)
        XCTAssertEqual(try store.storedConfig(run(10, "compare"), as: CompareConfig.self).precision, .f32)
        for id in 2...10 {
            XCTAssertFalse(try XCTUnwrap(try store.stageRuns().first { $0.id == id }).config.contains("precision"), "the fixture predates it")
        }
    }

    /// `--precision` combines with LoRA and bfloat16 frozen weights on the stages that train.
    func testPrecisionCombinesWithLoRAAndBF16FrozenWeights() throws {
        let given = GivenOptions(values: ["--precision": "bf16", "--lora-rank": "4", "--frozen-dtype": "bf16"])
        let p = try PPOConfig.parse(given)
        XCTAssertEqual([p.precision.rawValue, p.frozenDType?.rawValue, p.lora.map { "\($0.rank)" }], ["bf16", "bf16", "4"])
        let r = try RewardConfig.parse(given)
        XCTAssertEqual([r.precision.rawValue, r.frozenDType.rawValue, r.lora.map { "\($0.rank)" }], ["bf16", "bf16", "4"])
        XCTAssertEqual(try PPOConfig.parse(GivenOptions(values: ["--lora-rank": "4"])).precision, .f32)
    }

    /// `--precision bf16` on each stage's command line is stored with the stage run, under
    /// "precision" in its settings, and read back (as `--resume` reads it).
    func testPrecisionIsStoredWithEveryStage() throws {
        let given = GivenOptions(values: ["--precision": "bf16", "--a": "1", "--b": "2"])
        func stored(_ value: some Encodable) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try RunStore.json(value).utf8)) as? [String: Any])
        }
        let g = try GenerateConfig.parse(given)
        XCTAssertEqual(try stored(GenerateStage.StoredRun(config: g, policyModelId: 1))["precision"] as? String, "bf16")
        let r = try RewardConfig.parse(given)
        XCTAssertEqual(try stored(r)["precision"] as? String, "bf16")
        let p = PPOStage.StoredRun(settings: try PPOConfig.parse(given), policyModelId: 1, referenceModelId: 1, rewardModelId: 2)
        XCTAssertEqual((try stored(p)["settings"] as? [String: Any])?["precision"] as? String, "bf16")
        let d = DPOStage.StoredRun(options: try DPOConfig.parse(given), policyModelId: 1, referenceModelId: 1)
        XCTAssertEqual((try stored(d)["options"] as? [String: Any])?["precision"] as? String, "bf16")
        let c = try CompareConfig.parse(given)
        XCTAssertEqual(try stored(c)["precision"] as? String, "bf16")

        // Read back from a run database, as the stage reads its settings on --resume.
        let ids = try [
            ("generate", store.beginStageRun(stage: "generate", config: GenerateStage.StoredRun(config: g, policyModelId: 1), seed: 0)),
            ("train-reward", store.beginStageRun(stage: "train-reward", config: r, seed: 0)),
            ("ppo", store.beginStageRun(stage: "ppo", config: p, seed: 0)),
            ("dpo", store.beginStageRun(stage: "dpo", config: d, seed: 0)),
            ("compare", store.beginStageRun(stage: "compare", config: c, seed: 0)),
        ]
        XCTAssertEqual(try store.storedConfig(run(ids[0].1, ids[0].0), as: GenerateConfig.self).precision, .bf16)
        XCTAssertEqual(try store.storedConfig(run(ids[1].1, ids[1].0), as: RewardConfig.self).precision, .bf16)
        XCTAssertEqual(try store.storedConfig(run(ids[2].1, ids[2].0), as: PPOStage.StoredRun.self).settings.precision, .bf16)
        XCTAssertEqual(try store.storedConfig(run(ids[3].1, ids[3].0), as: DPOStage.StoredRun.self).options.precision, .bf16)
        XCTAssertEqual(try store.storedConfig(run(ids[4].1, ids[4].0), as: CompareConfig.self).precision, .bf16)
        for (_, id) in ids { try store.finishStageRun(id, status: .interrupted) }
        let resumed = try store.resumableStageRun(
            "ppo", label: "PPO", command: "rlhf ppo", config: PPOStage.StoredRun.self, state: PPOStage.SavedState.self)
        XCTAssertEqual(resumed.config.settings.precision, .bf16)
    }
}
