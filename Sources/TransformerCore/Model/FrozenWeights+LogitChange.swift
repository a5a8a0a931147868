import Foundation

/// How much holding `model`'s block projections in bfloat16 (`holdProjectionsInBFloat16`,
/// `--frozen-dtype bf16`) changes its output, over text the model writes itself (4 random 8-token
/// prompts and 120 tokens sampled at temperature 1, fewer when its context is shorter): the
/// largest and the mean |Δ logit|, the spread of the logits for scale, the mean KL(f32 ‖ bf16)
/// of the next-token distributions, and how often their argmax agrees, as (measure, value)
/// pairs in that order after the number of tokens compared. The comparison runs on a bfloat16
/// copy; `model` itself must still hold its projections in single precision, and is left as it
/// is. `rlhf bench --only bf16` prints these figures.
public func bf16LogitChange(_ model: TransformerModel) -> [(String, Double)] {
    let cfg = model.config
    var rng = SeededRandom(seed: 11)
    let prompts = (0..<4).map { _ in (0..<8).map { _ in Int32(rng.int(below: cfg.vocabSize)) } }
    let length = min(128, cfg.nCtx)
    let out = Generator(model: model).generate(
        prompts: prompts, maxNewTokens: length - 8, settings: SamplingSettings(temperature: 1),
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
    return [
        ("tokens compared", Double(rows)),
        ("max |Δ logit|", maxDiff),
        ("mean |Δ logit|", sumDiff / n),
        ("std of the f32 logits (for scale)", (sumSq / n - mean * mean).squareRoot()),
        ("mean KL(f32 ‖ bf16) per token, nats", kl / Double(rows)),
        ("argmax agreement, %", 100 * Double(agree) / Double(rows)),
    ]
}
