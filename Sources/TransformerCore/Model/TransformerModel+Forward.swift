extension TransformerModel {
    /// Runs the model on `batch`, filling `acts` (hidden states, and logits and/or scalar-head
    /// values as asked). Tokens must be in `0..<vocabSize` and positions in `0..<nCtx`.
    public func forward(_ batch: TokenBatch, _ acts: Activations, computeLogits: Bool = true) {
        forward(batch, acts, computeLogits: computeLogits, afterLayer: nil)
    }

    /// `forward`, calling `afterLayer(l, qkv)` once layer l is done, while its (B, T, 3C)
    /// query/key/value projections are still in place (inference-only sets reuse them).
    func forward(_ batch: TokenBatch, _ acts: Activations, computeLogits: Bool,
                 afterLayer: ((Int, UnsafePointer<Float>) -> Void)?) {
        precondition(acts.batch == batch.batch && acts.length == batch.length, "activations allocated for another shape")
        precondition(batch.length <= config.nCtx, "sequence length \(batch.length) exceeds n_ctx \(config.nCtx)")
        let n = acts.n, c = config.nEmbd, eps = config.layerNormEpsilon
        let bsz = batch.batch, t = batch.length
        batch.tokens.withUnsafeBufferPointer { tok in
        batch.positions.withUnsafeBufferPointer { pos in
        batch.mask.withUnsafeBufferPointer { mask in
            for i in 0..<n {
                precondition(tok[i] >= 0 && Int(tok[i]) < config.vocabSize, "token id \(tok[i]) outside the vocabulary")
                precondition(pos[i] >= 0 && Int(pos[i]) < config.nCtx, "position \(pos[i]) outside n_ctx")
            }
            // token + position embeddings
            encoderForward(acts.encoded.pointer, tok.baseAddress!, pos.baseAddress!, p.wte, p.wpe, n, c)
            var residual = UnsafePointer(acts.encoded.pointer)
            for (l, w) in p.blocks.enumerated() {
                let a = acts.blocks[l]
                // attention sub-block: LN → qkv projection → attention → output projection → residual
                layerNormForward(a.ln1.pointer, a.ln1Mean.pointer, a.ln1Rstd.pointer, residual, w.ln1w, w.ln1b, n, c, eps)
                linear(a.qkv.pointer, a.ln1.pointer, w.qkvw, w.qkvb, n, c, 3 * c)
                attentionForward(a.atty.pointer, a.att.pointer, a.qkv.pointer, mask.baseAddress!, bsz, t, c, config.nHead)
                linear(acts.dtmp.pointer, a.atty.pointer, w.projw, w.projb, n, c, c)
                residualForward(a.res2.pointer, residual, acts.dtmp.pointer, n * c)
                // MLP sub-block: LN → fc → GELU → projection → residual
                layerNormForward(a.ln2.pointer, a.ln2Mean.pointer, a.ln2Rstd.pointer, a.res2.pointer, w.ln2w, w.ln2b, n, c, eps)
                linear(a.fch.pointer, a.ln2.pointer, w.fcw, w.fcb, n, c, 4 * c)
                geluForward(a.fchGelu.pointer, a.fch.pointer, n * 4 * c)
                linear(acts.dtmp.pointer, a.fchGelu.pointer, w.fcprojw, w.fcprojb, n, 4 * c, c)
                residualForward(a.res3.pointer, a.res2.pointer, acts.dtmp.pointer, n * c)
                residual = UnsafePointer(a.res3.pointer)
                afterLayer?(l, a.qkv.pointer)
            }
            // final LayerNorm, then the heads
            layerNormForward(acts.lnf.pointer, acts.lnfMean.pointer, acts.lnfRstd.pointer, residual, p.lnfw, p.lnfb, n, c, eps)
            if computeLogits {
                // logits = lnf · wteᵀ (tied embeddings)
                Gemm.multiply(m: n, n: config.vocabSize, k: c, a: .rowMajor(acts.lnf.pointer, columns: c),
                              b: .transposed(p.wte, columns: c), c: acts.logits.pointer, ldc: config.vocabSize)
            }
            if let sw = p.scoreW, let sb = p.scoreB {
                for i in 0..<n { acts.values[i] = dot(acts.lnf.pointer + i * c, sw, c) + sb[0] }
            }
        }}}
    }

    /// Scalar-head outputs at the last real token of each sequence (the reward model's reading).
    public func lastTokenValues(_ batch: TokenBatch, _ acts: Activations) -> [Float] {
        (0..<batch.batch).map { b in acts.values[b * batch.length + batch.lastRealIndex(b)] }
    }
}

/// out (N,OC) = inp (N,C) · w (C,OC) + bias (OC); w in Hugging Face Conv1D layout [in, out].
@inline(__always)
func linear(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
            _ bias: UnsafePointer<Float>?, _ n: Int, _ c: Int, _ oc: Int) {
    Gemm.multiply(m: n, n: oc, k: c, a: .rowMajor(inp, columns: c), b: .rowMajor(w, columns: oc),
                  c: out, ldc: oc, bias: bias)
}

/// Backward of `linear`: dinp (N,C) = dout·wᵀ; dw (C,OC) += inpᵀ·dout; dbias (OC) += Σ dout.
@inline(__always)
func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>, _ dbias: UnsafeMutablePointer<Float>?,
                    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                    _ n: Int, _ c: Int, _ oc: Int) {
    if let dinp {
        Gemm.multiply(m: n, n: c, k: oc, a: .rowMajor(dout, columns: oc), b: .transposed(w, columns: oc), c: dinp, ldc: c)
    }
    Gemm.multiply(m: c, n: oc, k: n, a: .transposed(inp, columns: c), b: .rowMajor(dout, columns: oc),
                  c: dw, ldc: oc, accumulate: true)
    if let dbias { biasBackward(dbias, dout, n, oc) }
}
