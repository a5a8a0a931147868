import Foundation

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

/// Where the last `Generator.generate` call's time went.
public struct GenerationTiming: Equatable, Sendable {
    /// Seconds of the prefill: the prompts through the model, the weights packed for the steps
    /// after it, and the first tokens' logits.
    public var prefillSeconds = 0.0
    /// Seconds of the decode steps and of sampling every token.
    public var decodeSeconds = 0.0
    /// Rows run through the model by the decode steps, summed over the steps (each step runs
    /// one token of every sequence that has not stopped).
    public var decodedRows = 0
    public init() {}
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

    /// Where the last `generate` call's time went.
    public private(set) var lastTiming = GenerationTiming()

    /// Samples up to `maxNewTokens` tokens after each prompt. A sequence stops at `eos` (when
    /// given) or at the limit. `pad` fills the left padding (it is masked out, so any valid id
    /// works). Prompts need at least one token, and prompt + new tokens must fit in n_ctx.
    public func generate(
        prompts: [[Int32]], maxNewTokens: Int, settings: SamplingSettings,
        eos: Int32?, pad: Int32, rng: inout SeededRandom
    ) -> [Generation] {
        generate(prompts: prompts, maxNewTokens: maxNewTokens, settings: settings, stopTokens: eos.map { [$0] } ?? [], pad: pad, rng: &rng)
    }

    /// `generate`, stopping a sequence at any of `stopTokens` (Llama 3 Instruct has three), which
    /// ends its tokens with `finishReason == .eos`.
    public func generate(
        prompts: [[Int32]], maxNewTokens: Int, settings: SamplingSettings,
        stopTokens: [Int32], pad: Int32, rng: inout SeededRandom
    ) -> [Generation] {
        let stops = Set(stopTokens)
        precondition(!prompts.isEmpty && prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        let b = prompts.count, v = model.config.vocabSize
        var results = (0..<b).map { _ in Generation(tokens: [], logProbs: [], finishReason: .length) }
        if maxNewTokens <= 0 { return results }
        // One sampler (scratch) per worker: each step's rows are picked in parallel, with their
        // uniforms drawn first in row order, so the tokens are those of picking them in turn.
        let samplers = (0..<min(b, Parallel.threadCount)).map { _ in Sampler(settings: settings, vocabSize: v) }
        var picks = [(token: Int32, logProb: Float)](repeating: (0, 0), count: b)
        var uniforms = [Float](repeating: 0, count: b)
        var positions = prompts.map { Int32($0.count) }
        var done = [Bool](repeating: false, count: b)
        var next = [Int32](repeating: pad, count: b)
        // The weights stay as they are until the last step: the products pack them once, for the
        // prefill and every decode step, not once per product.
        var timing = GenerationTiming()
        let start = Date()
        defer { lastTiming = timing }
        Gemm.keepingPackedWeights {
            let cache = prefill(prompts: prompts, pad: pad, extra: maxNewTokens, reuse: true)
            let st = state!
            timing.prefillSeconds = Date().timeIntervalSince(start)
            defer { timing.decodeSeconds = Date().timeIntervalSince(start) - timing.prefillSeconds }
            // The rows still sampling, in order; row k of the logits is live[k]'s. A row that
            // stops leaves the batch: the steps after it run only the others.
            var live = Array(0..<b)
            for step in 0..<maxNewTokens {
                for i in live where !settings.greedy { uniforms[i] = rng.uniformFloat() }
                picks.withUnsafeMutableBufferPointer { out in
                    Parallel.forEachTask(live.count, threads: samplers.count) { task, worker in
                        let i = live[task]
                        out[i] = samplers[worker].pick(st.logits.pointer + task * v, v, uniform: uniforms[i])
                    }
                }
                for i in live {
                    let (tok, lp) = picks[i]
                    results[i].tokens.append(tok)
                    results[i].logProbs.append(lp)
                    next[i] = tok
                    if stops.contains(tok) { done[i] = true; results[i].finishReason = .eos }
                }
                if step == maxNewTokens - 1 || !done.contains(false) { break }
                live.removeAll { done[$0] }
                decode(cache, rows: live, tokens: live.map { next[$0] }, positions: live.map { positions[$0] })
                timing.decodedRows += live.count
                for i in live { positions[i] += 1 }
            }
        }
        return results
    }

    /// Runs the left-padded prompts through the model, fills a new cache with room for `extra`
    /// more positions, and leaves the next-token logits of each prompt in `logits`.
    @discardableResult
    public func prefill(prompts: [[Int32]], pad: Int32, extra: Int) -> KVCache {
        prefill(prompts: prompts, pad: pad, extra: extra, reuse: false)
    }

    /// Whether a prompt given more than once (a group of completions per prompt, as GRPO samples)
    /// runs through the model once, its keys and values copied to each of its rows. Every row's
    /// arithmetic is its own, so the cache and logits are the same bits either way (off in tests).
    var sharesRepeatedPrompts = true

    /// `prefill`; with `reuse`, into the generator's own cache (and activations) when they are
    /// big enough, which the next `reuse` call overwrites.
    func prefill(prompts: [[Int32]], pad: Int32, extra: Int, reuse: Bool) -> KVCache {
        let cfg = model.config
        // source[i]: the row of the model's batch that holds prompt i.
        var source = Array(prompts.indices), distinct = prompts
        if sharesRepeatedPrompts {
            var first: [[Int32]: Int] = [:]
            distinct = []
            for (i, p) in prompts.enumerated() {
                if let u = first[p] { source[i] = u } else { first[p] = distinct.count; source[i] = distinct.count; distinct.append(p) }
            }
        }
        let batch = TokenBatch(leftPadding: distinct, pad: pad)
        let tp = batch.length, b = prompts.count, u = batch.batch, c = cfg.nEmbd, nkv = cfg.nKVHead, hs = cfg.headSize
        let shape = AttentionHeads(cfg)
        precondition(tp + extra <= cfg.nCtx, "prompt (\(tp)) + new tokens (\(extra)) exceed the context of \(cfg.nCtx)")
        let cache: KVCache
        if reuse, let spare = spareCache, spare.batch == b, spare.capacity >= tp + extra {
            cache = spare
        } else {
            spareCache = nil // free the old one before allocating
            cache = KVCache(config: cfg, batch: b, capacity: tp + extra)
            if reuse { spareCache = cache }
        }
        cache.length = 0
        let st = decodeState(b)
        let acts: Activations
        if reuse, let a = prefillActs, a.batch == u, a.length == tp {
            acts = a
        } else {
            prefillActs = nil
            acts = Activations(config: cfg, batch: u, length: tp, inferenceOnly: true)
            if reuse { prefillActs = acts }
        }
        let cap = cache.capacity
        model.forward(batch, acts, computeLogits: false) { l, qkv in
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            for bi in 0..<b {
                for t in 0..<tp {
                    let row = qkv + (source[bi] * tp + t) * shape.ldqkv
                    for j in 0..<nkv {
                        let k = row + shape.k(j), vv = row + shape.v(j)
                        let kBase = kc + (bi * nkv + j) * hs * cap + t
                        for d in 0..<hs { kBase[d * cap] = k[d] }
                        copyFloats(vc + ((bi * nkv + j) * cap + t) * hs, vv, hs)
                    }
                }
            }
        }
        for bi in 0..<b {
            let ui = source[bi]
            for t in 0..<tp { cache.mask[bi * cap + t] = batch.mask[ui * tp + t] }
            (st.x.pointer + bi * c).update(from: acts.lnf.pointer + (ui * tp + tp - 1) * c, count: c)
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
        precondition(tokens.count == cache.batch, "decode: wrong batch")
        decode(cache, rows: Array(0..<cache.batch), tokens: tokens, positions: positions)
    }

    /// `decode` for some of the cache's sequences (`rows`, ascending), one token each: row k of
    /// `logits` is then `rows[k]`'s. The others' cache positions at this step are masked out; a
    /// sequence left out once (it has stopped) must stay out. A sequence's logits are those of
    /// decoding every row, up to rounding: with fewer rows the products may take other kernels,
    /// whose sums can differ in the last bits.
    public func decode(_ cache: KVCache, rows: [Int], tokens: [Int32], positions: [Int32]) {
        let b = rows.count, cap = cache.capacity
        precondition(b > 0 && tokens.count == b && positions.count == b && cache.length < cap, "decode: cache full or wrong batch")
        precondition(
            zip(rows, rows.dropFirst()).allSatisfy { $0 < $1 } && rows[0] >= 0 && rows[b - 1] < cache.batch, "decode: rows outside the batch")
        precondition(positions.allSatisfy { $0 >= 0 && Int($0) < model.config.nCtx }, "decode: position outside n_ctx")
        let st = decodeState(cache.batch)
        let cur = cache.length
        for bi in 0..<cache.batch { cache.mask[bi * cap + cur] = 0 }
        for bi in rows { cache.mask[bi * cap + cur] = 1 }
        tokens.withUnsafeBufferPointer { tok in
            positions.withUnsafeBufferPointer { pos in
                model.embed(st.x.pointer, tok.baseAddress!, pos.baseAddress!, b)
            }
        }
        let parts = min(b, Parallel.threadCount)
        if parts > 1 && model.layout.count * 4 <= Self.batchSplitBytes {
            Parallel.isolated(parts) { w in decodeRows(cache, st, (b * w / parts)..<(b * (w + 1) / parts), positions, rows) }
        } else {
            decodeRows(cache, st, 0..<b, positions, rows)
        }
        cache.length = cur + 1
    }

    /// One decoding step for rows `rows` of the step's batch, from their embeddings in `st.x` to
    /// their logits; row i is the cache's sequence `cacheRows[i]`. (In an isolated part, the
    /// kernels run on this thread alone.)
    private func decodeRows(_ cache: KVCache, _ st: DecodeState, _ rows: Range<Int>, _ positions: [Int32], _ cacheRows: [Int]) {
        let cfg = model.config, p = model.p, m = model
        let c = cfg.nEmbd, nh = cfg.nHead, nkv = cfg.nKVHead, hs = cfg.headSize, cap = cache.capacity
        let shape = AttentionHeads(cfg), ldqkv = shape.ldqkv, qd = cfg.qDim, inter = cfg.intermediateSize
        let r0 = rows.lowerBound, nb = rows.count
        if nb == 0 { return }
        let cur = cache.length
        let scale = 1 / Float(hs).squareRoot()
        let x = st.x.pointer + r0 * c, ln = st.ln.pointer + r0 * c
        let mean = st.mean.pointer + r0, rstd = st.rstd.pointer + r0
        let qkv = st.qkv.pointer + r0 * ldqkv, atty = st.atty.pointer + r0 * qd
        let tmp = st.tmp.pointer + r0 * c, fch = st.fch.pointer + r0 * cfg.mlpInWidth, hid = st.hidden.pointer + r0 * inter
        let kern = Kernels.active
        let llama = cfg.architecture.isLlamaFamily
        for (l, w) in p.blocks.enumerated() {
            m.norm(ln, mean, rstd, x, w.ln1w, w.ln1b, nb)
            m.project(qkv, ln, w.qkvw, w.qkvb, nb, c, ldqkv, l, .qkv)
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            cache.mask.withUnsafeBufferPointer { maskBuf in
                let mask = maskBuf.baseAddress!
                let threads = nb * nh * (cur + 1) * hs >= (1 << 16) ? Parallel.threadCount : 1
                let tasks = nb * nkv, parts = min(threads, tasks)
                @inline(__always) func blocks(_ task: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
                    let block = cacheRows[r0 + task / nkv] * nkv + task % nkv
                    return (kc + block * hs * cap, vc + block * cap * hs)
                }
                // One task per sequence and key/value head: it rotates the head's queries and
                // key, appends this token's key and value to the cache, then runs the query
                // heads in turn. Each worker takes a run of tasks and asks for the next one's
                // cached keys and values while it works (they come from memory: the weights
                // streamed since this layer's last step have pushed them out of cache).
                Parallel.forEachTask(parts, threads: parts) { part, worker in
                    let scores = attentionScratch(worker).floats(cap)
                    let end = tasks * (part + 1) / parts
                    for task in tasks * part / parts..<end {
                        if task + 1 < end {
                            let (kn, vn) = blocks(task + 1)
                            for d in 0..<hs { Gemm.prefetchLines(kn + d * cap, bytes: (cur + 1) * 4) }
                            Gemm.prefetchLines(vn, bytes: (cur + 1) * hs * 4)
                        }
                        let i = task / nkv, j = task % nkv, bi = r0 + i
                        let row = qkv + i * ldqkv
                        if let rot = m.rotary {
                            let pos = Int(positions[bi])
                            rot.rotate(row + shape.q(j * shape.group), heads: shape.group, pos: pos, inverse: false)
                            rot.rotate(row + shape.k(j), heads: 1, pos: pos, inverse: false)
                        }
                        let (kBase, vBase) = blocks(task)
                        let k = row + shape.k(j)
                        for d in 0..<hs { kBase[d * cap + cur] = k[d] }
                        copyFloats(vBase + cur * hs, row + shape.v(j), hs)
                        for h in j * shape.group..<(j + 1) * shape.group {
                            // scores over cached positions, masked softmax, weighted sum of values
                            kern.decodeScores(row + shape.q(h), scale, kBase, cap, hs, cur + 1, scores)
                            maskedSoftmaxRow(scores, mask + cacheRows[bi] * cap, cur, cur + 1)
                            kern.decodeWeightedValues(scores, cur + 1, vBase, hs, atty + i * qd + h * hs)
                        }
                    }
                }
            }
            m.project(tmp, atty, w.projw, w.projb, nb, qd, c, l, .attentionOut)
            addInPlace(tmp, x, nb * c)
            m.norm(ln, mean, rstd, x, w.ln2w, w.ln2b, nb)
            m.project(fch, ln, w.fcw, w.fcb, nb, c, cfg.mlpInWidth, l, .mlpIn)
            if llama { swigluForward(hid, fch, nb, inter) } else { geluForward(hid, fch, nb * inter) }
            m.project(tmp, hid, w.fcprojw, w.fcprojb, nb, inter, c, l, .mlpOut)
            addInPlace(tmp, x, nb * c)
        }
        m.norm(ln, mean, rstd, x, p.lnfw, p.lnfb, nb)
        lmHead(ln, rows)
    }

    /// logits[rows] (·, V) = hidden (rows.count, C) · wteᵀ
    private func lmHead(_ hidden: UnsafeMutablePointer<Float>, _ rows: Range<Int>) {
        let cfg = model.config, st = state!
        Gemm.multiply(
            m: rows.count, n: cfg.vocabSize, k: cfg.nEmbd, a: .rowMajor(hidden, columns: cfg.nEmbd),
            b: .transposed(model.p.head, columns: cfg.nEmbd), c: st.logits.pointer + rows.lowerBound * cfg.vocabSize,
            ldc: cfg.vocabSize, weight: true)
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
    let x, ln, mean, rstd, qkv, atty, tmp, fch, hidden, logits: FloatBuffer
    init(config: ModelConfig, batch: Int) {
        self.batch = batch
        let c = config.nEmbd
        x = FloatBuffer(count: batch * c); ln = FloatBuffer(count: batch * c)
        mean = FloatBuffer(count: batch); rstd = FloatBuffer(count: batch)
        qkv = FloatBuffer(count: batch * config.qkvWidth); atty = FloatBuffer(count: batch * config.qDim)
        tmp = FloatBuffer(count: batch * c); fch = FloatBuffer(count: batch * config.mlpInWidth)
        hidden = FloatBuffer(count: batch * config.intermediateSize)
        logits = FloatBuffer(count: batch * config.vocabSize)
    }
    var floatCount: Int { [x, ln, mean, rstd, qkv, atty, tmp, fch, hidden, logits].reduce(0) { $0 + $1.count } }
}
