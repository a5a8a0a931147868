/// Why a sequence stopped.
public enum FinishReason: String, Codable, Sendable {
    /// It produced the end-of-sequence token.
    case eos
    /// It reached the maximum number of new tokens.
    case length
}

/// One generated continuation.
public struct Generation: Equatable, Sendable {
    /// The new tokens, ending with EOS when `finishReason == .eos`.
    public var tokens: [Int32]
    /// Log-probability of each new token under softmax(logits/temperature).
    public var logProbs: [Float]
    /// Why generation stopped.
    public var finishReason: FinishReason
}

/// Batched incremental decoding with a KV cache: prompts of different lengths are left-padded,
/// run through the model once (prefill), and then extended one token per step, each step costing
/// one row per sequence instead of a full forward pass.
public final class Generator {
    /// The model sampled from.
    public let model: TransformerModel
    private var state: DecodeState?
    /// Buffers kept between `generate` calls, so a loop of calls (a PPO run) allocates nothing
    /// after the first: the prefill activations of the last shape, and the last cache.
    private var prefillActs: Activations?
    private var spareCache: KVCache?

    /// A generator for `model`.
    public init(model: TransformerModel) { self.model = model }

    /// Samples up to `maxNewTokens` tokens after each prompt. A sequence stops at `eos` (when
    /// given) or at the limit. `pad` fills the left padding (it is masked out, so any valid id
    /// works). Prompts need at least one token, and prompt + new tokens must fit in n_ctx.
    public func generate(prompts: [[Int32]], maxNewTokens: Int, settings: SamplingSettings,
                         eos: Int32?, pad: Int32, rng: inout SeededRandom) -> [Generation] {
        precondition(!prompts.isEmpty && prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        let b = prompts.count, v = model.config.vocabSize
        var results = (0..<b).map { _ in Generation(tokens: [], logProbs: [], finishReason: .length) }
        if maxNewTokens <= 0 { return results }
        let sampler = Sampler(settings: settings, vocabSize: v)
        let cache = prefill(prompts: prompts, pad: pad, extra: maxNewTokens, reuse: true)
        var positions = prompts.map { Int32($0.count) }
        var done = [Bool](repeating: false, count: b)
        var next = [Int32](repeating: pad, count: b)
        let st = state!
        for step in 0..<maxNewTokens {
            for i in 0..<b where !done[i] {
                let (tok, lp) = sampler.pick(st.logits.pointer + i * v, v, rng: &rng)
                results[i].tokens.append(tok)
                results[i].logProbs.append(lp)
                next[i] = tok
                if let eos, tok == eos { done[i] = true; results[i].finishReason = .eos }
            }
            if step == maxNewTokens - 1 || !done.contains(false) { break }
            decode(cache, tokens: next, positions: positions)
            for i in 0..<b { positions[i] += 1 }
        }
        return results
    }

    /// Runs the left-padded prompts through the model, fills a new cache with room for `extra`
    /// more positions, and leaves the next-token logits of each prompt in `logits`.
    @discardableResult
    public func prefill(prompts: [[Int32]], pad: Int32, extra: Int) -> KVCache {
        prefill(prompts: prompts, pad: pad, extra: extra, reuse: false)
    }

    /// `prefill`; with `reuse`, into the generator's own cache (and activations) when they are
    /// big enough, which the next `reuse` call overwrites.
    func prefill(prompts: [[Int32]], pad: Int32, extra: Int, reuse: Bool) -> KVCache {
        let cfg = model.config
        let batch = TokenBatch(leftPadding: prompts, pad: pad)
        let tp = batch.length, b = batch.batch, c = cfg.nEmbd, nh = cfg.nHead, hs = cfg.headSize
        precondition(tp + extra <= cfg.nCtx, "prompt (\(tp)) + new tokens (\(extra)) exceed the context of \(cfg.nCtx)")
        let cache: KVCache
        if reuse, let spare = spareCache, spare.batch == b, spare.capacity >= tp + extra {
            cache = spare
        } else {
            spareCache = nil        // free the old one before allocating
            cache = KVCache(config: cfg, batch: b, capacity: tp + extra)
            if reuse { spareCache = cache }
        }
        cache.length = 0
        let st = decodeState(b)
        let acts: Activations
        if reuse, let a = prefillActs, a.batch == b, a.length == tp {
            acts = a
        } else {
            prefillActs = nil
            acts = Activations(config: cfg, batch: b, length: tp, inferenceOnly: true)
            if reuse { prefillActs = acts }
        }
        let cap = cache.capacity
        model.forward(batch, acts, computeLogits: false) { l, qkv in
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            for bi in 0..<b {
                for t in 0..<tp {
                    let row = qkv + (bi * tp + t) * 3 * c
                    for h in 0..<nh {
                        let k = row + c + h * hs, vv = row + 2 * c + h * hs
                        let kBase = kc + (bi * nh + h) * hs * cap + t
                        for d in 0..<hs { kBase[d * cap] = k[d] }
                        copyFloats(vc + ((bi * nh + h) * cap + t) * hs, vv, hs)
                    }
                }
            }
        }
        for bi in 0..<b {
            for t in 0..<tp { cache.mask[bi * cap + t] = batch.mask[bi * tp + t] }
            (st.x.pointer + bi * c).update(from: acts.lnf.pointer + (bi * tp + tp - 1) * c, count: c)
        }
        cache.length = tp
        lmHead(st.x.pointer, 0..<b)
        return cache
    }

    /// Floats held between calls: the kept cache, prefill activations and per-step buffers.
    public var heldFloatCount: Int {
        (spareCache?.floatCount ?? 0) + (prefillActs?.floatCount ?? 0) + (state?.floatCount ?? 0)
    }

    /// Logits (B, V) left by the last `prefill` or `decode`.
    public var logits: UnsafePointer<Float> { UnsafePointer(state!.logits.pointer) }

    /// Models up to this many bytes of weights decode with the batch split between the cores,
    /// each running whole steps for its rows: the weights stay in cache, so the cores need not
    /// meet after every product. Larger models split each product instead, so that every core
    /// streams only its share of the weights from memory.
    public static let batchSplitBytes = 16 << 20

    /// Feeds one token per sequence at the given positions, appends their keys and values to the
    /// cache, and leaves the next-token logits in `logits`.
    public func decode(_ cache: KVCache, tokens: [Int32], positions: [Int32]) {
        let cfg = model.config, p = model.p
        let b = cache.batch, c = cfg.nEmbd, cap = cache.capacity
        precondition(tokens.count == b && positions.count == b && cache.length < cap, "decode: cache full or wrong batch")
        let st = decodeState(b)
        let cur = cache.length
        for bi in 0..<b { cache.mask[bi * cap + cur] = 1 }
        tokens.withUnsafeBufferPointer { tok in
            positions.withUnsafeBufferPointer { pos in
                encoderForward(st.x.pointer, tok.baseAddress!, pos.baseAddress!, p.wte, p.wpe, b, c)
            }
        }
        let parts = min(b, Parallel.threadCount)
        if parts > 1 && model.layout.count * 4 <= Self.batchSplitBytes {
            Parallel.isolated(parts) { w in decodeRows(cache, st, (b * w / parts)..<(b * (w + 1) / parts)) }
        } else {
            decodeRows(cache, st, 0..<b)
        }
        cache.length = cur + 1
    }

    /// One decoding step for rows `rows` of the batch, from their embeddings in `st.x` to their
    /// logits. (In an isolated part, the kernels run on this thread alone.)
    private func decodeRows(_ cache: KVCache, _ st: DecodeState, _ rows: Range<Int>) {
        let cfg = model.config, p = model.p
        let c = cfg.nEmbd, nh = cfg.nHead, hs = cfg.headSize, cap = cache.capacity
        let r0 = rows.lowerBound, nb = rows.count
        if nb == 0 { return }
        let cur = cache.length
        let eps = cfg.layerNormEpsilon
        let scale = 1 / Float(hs).squareRoot()
        let x = st.x.pointer + r0 * c, ln = st.ln.pointer + r0 * c
        let mean = st.mean.pointer + r0, rstd = st.rstd.pointer + r0
        let qkv = st.qkv.pointer + r0 * 3 * c, atty = st.atty.pointer + r0 * c
        let tmp = st.tmp.pointer + r0 * c, fch = st.fch.pointer + r0 * 4 * c
        let kern = Kernels.active
        for (l, w) in p.blocks.enumerated() {
            layerNormForward(ln, mean, rstd, x, w.ln1w, w.ln1b, nb, c, eps)
            linear(qkv, ln, w.qkvw, w.qkvb, nb, c, 3 * c)
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            cache.mask.withUnsafeBufferPointer { maskBuf in
                let mask = maskBuf.baseAddress!
                let threads = nb * nh * (cur + 1) * hs >= (1 << 16) ? Parallel.threadCount : 1
                Parallel.forEachTask(nb * nh, threads: threads) { task, worker in
                    let i = task / nh, h = task % nh, bi = r0 + i
                    let row = qkv + i * 3 * c
                    let q = row + h * hs, k = row + c + h * hs, vv = row + 2 * c + h * hs
                    let kBase = kc + (bi * nh + h) * hs * cap, vBase = vc + (bi * nh + h) * cap * hs
                    // append this token's key and value
                    for d in 0..<hs { kBase[d * cap + cur] = k[d] }
                    copyFloats(vBase + cur * hs, vv, hs)
                    // scores over cached positions, masked softmax, weighted sum of values
                    let scores = attentionScratch(worker).floats(cap)
                    kern.decodeScores(q, scale, kBase, cap, hs, cur + 1, scores)
                    maskedSoftmaxRow(scores, mask + bi * cap, cur, cur + 1)
                    kern.decodeWeightedValues(scores, cur + 1, vBase, hs, atty + i * c + h * hs)
                }
            }
            linear(tmp, atty, w.projw, w.projb, nb, c, c)
            addInPlace(tmp, x, nb * c)
            layerNormForward(ln, mean, rstd, x, w.ln2w, w.ln2b, nb, c, eps)
            linear(fch, ln, w.fcw, w.fcb, nb, c, 4 * c)
            geluForward(fch, fch, nb * 4 * c)
            linear(tmp, fch, w.fcprojw, w.fcprojb, nb, 4 * c, c)
            addInPlace(tmp, x, nb * c)
        }
        layerNormForward(ln, mean, rstd, x, p.lnfw, p.lnfb, nb, c, eps)
        lmHead(ln, rows)
    }

    /// logits[rows] (·, V) = hidden (rows.count, C) · wteᵀ
    private func lmHead(_ hidden: UnsafeMutablePointer<Float>, _ rows: Range<Int>) {
        let cfg = model.config, st = state!
        Gemm.multiply(m: rows.count, n: cfg.vocabSize, k: cfg.nEmbd, a: .rowMajor(hidden, columns: cfg.nEmbd),
                      b: .transposed(model.p.wte, columns: cfg.nEmbd), c: st.logits.pointer + rows.lowerBound * cfg.vocabSize,
                      ldc: cfg.vocabSize)
    }

    private func decodeState(_ b: Int) -> DecodeState {
        if let s = state, s.batch == b { return s }
        let s = DecodeState(config: model.config, batch: b)
        state = s
        return s
    }
}

/// Per-step buffers for decoding a batch, allocated once per batch size.
final class DecodeState {
    let batch: Int
    let x, ln, mean, rstd, qkv, atty, tmp, fch, logits: FloatBuffer
    init(config: ModelConfig, batch: Int) {
        self.batch = batch
        let c = config.nEmbd
        x = FloatBuffer(count: batch * c); ln = FloatBuffer(count: batch * c)
        mean = FloatBuffer(count: batch); rstd = FloatBuffer(count: batch)
        qkv = FloatBuffer(count: batch * 3 * c); atty = FloatBuffer(count: batch * c)
        tmp = FloatBuffer(count: batch * c); fch = FloatBuffer(count: batch * 4 * c)
        logits = FloatBuffer(count: batch * config.vocabSize)
    }
    var floatCount: Int { [x, ln, mean, rstd, qkv, atty, tmp, fch, logits].reduce(0) { $0 + $1.count } }
}
