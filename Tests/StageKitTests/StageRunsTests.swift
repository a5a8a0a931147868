import Foundation
import RunStore
import StageKit
import TransformerCore
import XCTest

final class StageRunsTests: XCTestCase {
    func tempStore() throws -> RunStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stagekit-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return try RunStore(folder: dir, create: true)
    }

    struct State: Codable, Equatable { var step: Int; var note: String }

    func testSettingsAndResumeStateRoundTrip() throws {
        let store = try tempStore()
        var c = ToyConfig()
        c.steps = 5; c.name = "n"; c.lora = LoRAConfig(rank: 2, alpha: 4, targets: ["c_attn"])
        let id = try store.beginStageRun(stage: "toy", config: c, seed: c.seed)
        XCTAssertNil(try store.resumeState(id, as: State.self))
        try store.setResumeState(State(step: 3, note: "a"), stageRunId: id)
        try store.setResumeState(State(step: 4, note: "b"), stageRunId: id)
        try store.finishStageRun(id, status: .interrupted)
        let (rid, config, state) = try store.resumableStageRun("toy", label: "Toy", command: "rlhf toy", config: ToyConfig.self, state: State.self)
        XCTAssertEqual(rid, id)
        XCTAssertEqual(config, c)
        XCTAssertEqual(state, State(step: 4, note: "b"), "the last save's state")
        try store.logMetrics(stageRunId: id, step: 4, [("x", 1)])
        try store.logMetrics(stageRunId: id, step: 5, [("x", 2)])
        try store.reopenStageRun(id, afterStep: 4)
        XCTAssertEqual(try store.metrics(stageRunId: id).map(\.step), [4], "what was logged after the save is dropped")
        XCTAssertEqual(try store.stageRuns(stage: "toy").first?.status, .running)
    }

    func testOptimizerFileRefusesChangedBytes() throws {
        let store = try tempStore()
        let layout = ParameterLayout(config: ModelConfig(nLayer: 1, nHead: 1, nEmbd: 4, nCtx: 4, vocabSize: 8), scalarHead: false)
        let opt = AdamW(layout: layout, config: AdamWConfig(learningRate: 0.1))
        let params = FloatBuffer(count: layout.count), grads = FloatBuffer(count: layout.count)
        for i in 0..<layout.count { grads[i] = Float(i % 7) - 3 }
        opt.update(params: params, grads: grads, lr: 0.1)
        let url = try store.stateFolder(stage: "toy", stageRunId: 1).appendingPathComponent("optimizer.safetensors")
        let file = try OptimizerFile(saving: opt, to: url)
        XCTAssertEqual(file.sha256, try SHA256.hex(of: url))
        let fresh = AdamW(layout: layout, config: AdamWConfig(learningRate: 0.1))
        try file.restore(into: fresh)
        var bytes = try Data(contentsOf: url)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: url)
        XCTAssertThrowsError(try file.restore(into: fresh))
    }
}
