extension TransformerModel {
    /// Backpropagates into `gradients` (accumulating) from the gradients of the objective with
    /// respect to the logits (`acts.dlogits`, when `fromLogits`) and/or the scalar-head values at
    /// every position (`dValues`, (B, T); zero where a position does not contribute).
    /// `acts` must hold the forward pass of this `batch`.
    public func backward(_ batch: TokenBatch, _ acts: Activations, fromLogits: Bool, dValues: [Float]? = nil) {
        precondition(!acts.inferenceOnly, "backward needs activations allocated without inferenceOnly")
        _ = gradients
        let g = self.g!
        let n = acts.n, c = config.nEmbd, v = config.vocabSize
        let dlnf = acts.dtmp.pointer
        dlnf.update(repeating: 0, count: n * c)
        if fromLogits {
            // logits = lnf·wteᵀ: dlnf = dlogits·wte, dwte += dlogitsᵀ·lnf
            Gemm.multiply(m: n, n: c, k: v, a: .rowMajor(acts.dlogits.pointer, columns: v), b: .rowMajor(p.wte, columns: c),
                          c: dlnf, ldc: c)
            Gemm.multiply(m: v, n: c, k: n, a: .transposed(acts.dlogits.pointer, columns: v),
                          b: .rowMajor(acts.lnf.pointer, columns: c), c: g.wte, ldc: c, accumulate: true)
        }
        if let dValues {
            precondition(dValues.count == n && hasScalarHead, "dValues needs a scalar head and one gradient per position")
            let sw = p.scoreW!, gw = g.scoreW!, gb = g.scoreB!
            for i in 0..<n where dValues[i] != 0 {
                axpy(dValues[i], sw, dlnf + i * c, c)
                axpy(dValues[i], acts.lnf.pointer + i * c, gw, c)
                gb[0] += dValues[i]
            }
        }
        let dres = acts.dres.pointer
        dres.update(repeating: 0, count: n * c)
        let last = config.nLayer > 0 ? acts.blocks[config.nLayer - 1].res3.pointer : acts.encoded.pointer
        layerNormBackward(dres, g.lnfw, g.lnfb, dlnf, last, p.lnfw, acts.lnfMean.pointer, acts.lnfRstd.pointer, n, c, acts.lnPartials)

        for l in stride(from: config.nLayer - 1, through: 0, by: -1) {
            let a = acts.blocks[l], w = p.blocks[l], gw = g.blocks[l]
            let residualIn = l == 0 ? acts.encoded.pointer : acts.blocks[l - 1].res3.pointer
            // MLP: res3 = res2 + proj(gelu(fc(ln2(res2))))
            linearBackward(acts.dfch.pointer, gw.fcprojw, gw.fcprojb, dres, a.fchGelu.pointer, w.fcprojw, n, 4 * c, c)
            geluBackward(acts.dfch.pointer, a.fch.pointer, acts.dfch.pointer, n * 4 * c)
            linearBackward(acts.dtmp.pointer, gw.fcw, gw.fcb, acts.dfch.pointer, a.ln2.pointer, w.fcw, n, c, 4 * c)
            layerNormBackward(dres, gw.ln2w, gw.ln2b, acts.dtmp.pointer, a.res2.pointer, w.ln2w,
                              a.ln2Mean.pointer, a.ln2Rstd.pointer, n, c, acts.lnPartials)
            // attention: res2 = res + proj(attn(qkv(ln1(res))))
            linearBackward(acts.dtmp.pointer, gw.projw, gw.projb, dres, a.atty.pointer, w.projw, n, c, c)
            attentionBackward(acts.dqkv.pointer, acts.dtmp.pointer, a.qkv.pointer, a.att.pointer,
                              batch.batch, batch.length, c, config.nHead)
            linearBackward(acts.dtmp.pointer, gw.qkvw, gw.qkvb, acts.dqkv.pointer, a.ln1.pointer, w.qkvw, n, c, 3 * c)
            layerNormBackward(dres, gw.ln1w, gw.ln1b, acts.dtmp.pointer, residualIn, w.ln1w,
                              a.ln1Mean.pointer, a.ln1Rstd.pointer, n, c, acts.lnPartials)
        }
        batch.tokens.withUnsafeBufferPointer { tok in
            batch.positions.withUnsafeBufferPointer { pos in
                encoderBackward(g.wte, g.wpe, dres, tok.baseAddress!, pos.baseAddress!, n, c)
            }
        }
    }
}
