extension TransformerModel {
    /// Runs the model on `batch`, filling `acts` (hidden states, and logits and/or scalar-head
    /// values as asked). Tokens must be in `0..<vocabSize` and positions in `0..<nCtx`.
    public func forward(_ batch: TokenBatch, _ acts: Activations, computeLogits: Bool = true) {
        forward(batch, acts, computeLogits: computeLogits, afterLayer: nil)
    }

    /// `forward`, calling `afterLayer(l, qkv)` once layer l is done, while its (B, T, qkvWidth)
    /// query/key/value projections (keys rotated, for the Llama family) are still in place
    /// (inference-only sets reuse them).
    func forward(
        _ batch: TokenBatch, _ acts: Activations, computeLogits: Bool,
        afterLayer: ((Int, UnsafePointer<Float>) -> Void)?
    ) {
        precondition(acts.batch == batch.batch && acts.length == batch.length, "activations allocated for another shape")
        precondition(batch.length <= config.nCtx, "sequence length \(batch.length) exceeds n_ctx \(config.nCtx)")
        let n = acts.n, c = config.nEmbd
        let bsz = batch.batch, t = batch.length
        let qd = config.qDim, qkvw = config.qkvWidth, inter = config.intermediateSize
        batch.tokens.withUnsafeBufferPointer { tok in
            batch.positions.withUnsafeBufferPointer { pos in
                batch.mask.withUnsafeBufferPointer { mask in
                    for i in 0..<n {
                        precondition(tok[i] >= 0 && Int(tok[i]) < config.vocabSize, "token id \(tok[i]) outside the vocabulary")
                        precondition(pos[i] >= 0 && Int(pos[i]) < config.nCtx, "position \(pos[i]) outside n_ctx")
                    }
                    // token (+ position) embeddings
                    embed(acts.encoded.pointer, tok.baseAddress!, pos.baseAddress!, n)
                    var residual = UnsafePointer(acts.encoded.pointer)
                    for (l, w) in p.blocks.enumerated() {
                        let a = acts.blocks[l]
                        // attention sub-block: norm → qkv projection (→ rotary) → attention → output projection → residual
                        norm(a.ln1.pointer, a.ln1Mean.pointer, a.ln1Rstd.pointer, residual, w.ln1w, w.ln1b, n)
                        project(a.qkv.pointer, a.ln1.pointer, w.qkvw, w.qkvb, n, c, qkvw, l, .qkv)
                        rotary?.apply(
                            a.qkv.pointer, ld: qkvw, heads: config.nHead + config.nKVHead, positions: pos.baseAddress!, n: n, inverse: false)
                        attentionForward(a.atty.pointer, a.att.pointer, a.qkv.pointer, mask.baseAddress!, bsz, t, heads)
                        project(acts.dtmp.pointer, a.atty.pointer, w.projw, w.projb, n, qd, c, l, .attentionOut)
                        residualForward(a.res2.pointer, residual, acts.dtmp.pointer, n * c)
                        // MLP sub-block: norm → fc (gate|up) → GELU (SwiGLU) → projection → residual
                        norm(a.ln2.pointer, a.ln2Mean.pointer, a.ln2Rstd.pointer, a.res2.pointer, w.ln2w, w.ln2b, n)
                        project(a.fch.pointer, a.ln2.pointer, w.fcw, w.fcb, n, c, config.mlpInWidth, l, .mlpIn)
                        if config.architecture.isLlamaFamily {
                            swigluForward(a.fchGelu.pointer, a.fch.pointer, n, inter)
                        } else {
                            geluForward(a.fchGelu.pointer, a.fch.pointer, n * inter)
                        }
                        project(acts.dtmp.pointer, a.fchGelu.pointer, w.fcprojw, w.fcprojb, n, inter, c, l, .mlpOut)
                        residualForward(a.res3.pointer, a.res2.pointer, acts.dtmp.pointer, n * c)
                        residual = UnsafePointer(a.res3.pointer)
                        afterLayer?(l, a.qkv.pointer)
                    }
                    // final norm, then the heads
                    norm(acts.lnf.pointer, acts.lnfMean.pointer, acts.lnfRstd.pointer, residual, p.lnfw, p.lnfb, n)
                    if computeLogits {
                        // logits = lnf · headᵀ (the token embedding when tied), at every position or
                        // at the window's, gathered
                        let rows = acts.logitRowCount
                        var hidden = UnsafePointer(acts.lnf.pointer)
                        if acts.logitWindow != nil {
                            let g = acts.windowHidden ?? FloatBuffer(count: rows * c) // (see logitWindow's didSet)
                            acts.windowHidden = g
                            for r in 0..<rows { copyFloats(g.pointer + r * c, acts.lnf.pointer + acts.position(ofLogitRow: r) * c, c) }
                            hidden = UnsafePointer(g.pointer)
                        }
                        Gemm.multiply(
                            m: rows, n: config.vocabSize, k: c, a: .rowMajor(hidden, columns: c),
                            b: .transposed(p.head, columns: c), c: acts.logits.pointer, ldc: config.vocabSize, weight: true)
                    }
                    if let (sw, sb) = scalarHead {
                        for i in 0..<n { acts.values[i] = dot(acts.lnf.pointer + i * c, sw, c) + sb[0] }
                    }
                }
            }
        }
    }

    /// Scalar-head outputs at the last real token of each sequence (the reward model's reading).
    public func lastTokenValues(_ batch: TokenBatch, _ acts: Activations) -> [Float] {
        (0..<batch.batch).map { b in acts.values[b * batch.length + batch.lastRealIndex(b)] }
    }

    /// The attention shape.
    var heads: AttentionHeads { AttentionHeads(config) }

    /// out (N,C) = the embeddings of `tokens` (+ the learned positions, GPT-2).
    @inline(__always)
    func embed(_ out: UnsafeMutablePointer<Float>, _ tokens: UnsafePointer<Int32>, _ positions: UnsafePointer<Int32>, _ n: Int) {
        if let wpe = p.wpe {
            encoderForward(out, tokens, positions, p.wte, wpe, n, config.nEmbd)
        } else {
            embeddingForward(out, tokens, p.wte, n, config.nEmbd)
        }
    }

    /// LayerNorm (GPT-2, saving mean and rstd) or RMSNorm (saving rstd) of n rows.
    @inline(__always)
    func norm(
        _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
        _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?, _ n: Int
    ) {
        if let b {
            layerNormForward(out, mean, rstd, inp, w, b, n, config.nEmbd, config.layerNormEpsilon)
        } else {
            rmsNormForward(out, rstd, inp, w, n, config.nEmbd, config.layerNormEpsilon)
        }
    }

    /// out (N,OC) = inp (N,C) · W + bias, with W in this architecture's layout: Conv1D [in, out]
    /// (GPT-2) or Linear [out, in] (Llama family); plus the low-rank update of the adapters at
    /// `site` of `layer`, when the model has enabled ones.
    @inline(__always)
    func project(
        _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ bias: UnsafePointer<Float>?, _ n: Int, _ c: Int, _ oc: Int, _ layer: Int, _ site: ProjectionSite
    ) {
        if let h = halfWeights(layer, site) {
            let b: BF16MatrixOperand = config.architecture.isLlamaFamily ? .transposed(h, columns: c) : .rowMajor(h, columns: oc)
            Gemm.multiply(m: n, n: oc, k: c, a: .rowMajor(inp, columns: c), b: b, c: out, ldc: oc, bias: bias, weight: true)
        } else if config.architecture.isLlamaFamily {
            Gemm.multiply(
                m: n, n: oc, k: c, a: .rowMajor(inp, columns: c), b: .transposed(w, columns: c),
                c: out, ldc: oc, bias: bias, weight: true)
        } else {
            linear(out, inp, w, bias, n, c, oc)
        }
        lora?.forward(layer: layer, site: site, out, ldOut: oc, inp, n: n)
    }

    /// Backward of `project`: dinp (N,C) = dout·Wᵀ (when asked); dW += the weight gradient and
    /// dbias (OC) += Σ dout, unless the base is frozen (dW nil); the adapters' gradients.
    @inline(__always)
    func projectBackward(
        _ dinp: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?, _ dbias: UnsafeMutablePointer<Float>?,
        _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ n: Int, _ c: Int, _ oc: Int, _ layer: Int, _ site: ProjectionSite
    ) {
        let llama = config.architecture.isLlamaFamily
        if let h = halfWeights(layer, site) {
            precondition(dw == nil, "the projections are held in bfloat16: they cannot be trained")
            if let dinp {
                Gemm.multiply(
                    m: n, n: c, k: oc, a: .rowMajor(dout, columns: oc), b: llama ? .rowMajor(h, columns: c) : .transposed(h, columns: oc),
                    c: dinp, ldc: c, weight: true)
            }
        } else if let dw {
            if llama {
                if let dinp {
                    Gemm.multiply(m: n, n: c, k: oc, a: .rowMajor(dout, columns: oc), b: .rowMajor(w, columns: c), c: dinp, ldc: c, weight: true)
                }
                // dW (OC, C) += doutᵀ · inp
                Gemm.multiply(
                    m: oc, n: c, k: n, a: .transposed(dout, columns: oc), b: .rowMajor(inp, columns: c),
                    c: dw, ldc: c, accumulate: true)
                if let dbias { biasBackward(dbias, dout, n, oc) }
            } else {
                linearBackward(dinp, dw, dbias, dout, inp, w, n, c, oc)
            }
        } else if let dinp {
            // Frozen base: only the gradient that flows on, dout·Wᵀ.
            Gemm.multiply(
                m: n, n: c, k: oc, a: .rowMajor(dout, columns: oc), b: llama ? .rowMajor(w, columns: c) : .transposed(w, columns: oc),
                c: dinp, ldc: c, weight: true)
        }
        lora?.backward(layer: layer, site: site, dinp: dinp, dout, ldOut: oc, inp, n: n)
    }
}

/// out (N,OC) = inp (N,C) · w (C,OC) + bias (OC); w in Hugging Face Conv1D layout [in, out].
@inline(__always)
func linear(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ n: Int, _ c: Int, _ oc: Int
) {
    Gemm.multiply(
        m: n, n: oc, k: c, a: .rowMajor(inp, columns: c), b: .rowMajor(w, columns: oc),
        c: out, ldc: oc, bias: bias, weight: true)
}

/// Backward of `linear`: dinp (N,C) = dout·wᵀ; dw (C,OC) += inpᵀ·dout; dbias (OC) += Σ dout.
@inline(__always)
func linearBackward(
    _ dinp: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>, _ dbias: UnsafeMutablePointer<Float>?,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    _ n: Int, _ c: Int, _ oc: Int
) {
    if let dinp {
        Gemm.multiply(m: n, n: c, k: oc, a: .rowMajor(dout, columns: oc), b: .transposed(w, columns: oc), c: dinp, ldc: c, weight: true)
    }
    Gemm.multiply(
        m: c, n: oc, k: n, a: .transposed(inp, columns: c), b: .rowMajor(dout, columns: oc),
        c: dw, ldc: oc, accumulate: true)
    if let dbias { biasBackward(dbias, dout, n, oc) }
}
