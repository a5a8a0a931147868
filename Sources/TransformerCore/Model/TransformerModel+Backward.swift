extension TransformerModel {
    /// Backpropagates into `gradients` (accumulating) from the gradients of the objective with
    /// respect to the logits (`acts.dlogits`, when `fromLogits`) and/or the scalar-head values at
    /// every position (`dValues`, (B, T); zero where a position does not contribute).
    /// `acts` must hold the forward pass of this `batch`. With LoRA adapters attached the base is
    /// frozen: only the adapters' gradients (and their own scalar head's, if any) are
    /// accumulated, and the base's weight-gradient products are skipped.
    public func backward(_ batch: TokenBatch, _ acts: Activations, fromLogits: Bool, dValues: [Float]? = nil) {
        precondition(!acts.inferenceOnly, "backward needs activations allocated without inferenceOnly")
        let lora = self.lora
        let g: ModelTensors? =
            lora == nil
            ? {
                _ = gradients; return self.g!
            }() : nil
        let discard = lora == nil ? nil : self.discard.pointer
        let n = acts.n, c = config.nEmbd, v = config.vocabSize
        let qd = config.qDim, qkvw = config.qkvWidth, inter = config.intermediateSize
        let dlnf = acts.dtmp.pointer
        dlnf.update(repeating: 0, count: n * c)
        if fromLogits {
            // logits = lnf·headᵀ: dlnf = dlogits·head, dhead += dlogitsᵀ·lnf (with a logit window,
            // over its gathered rows, the gradient scattered back to their positions)
            let rows = acts.logitRowCount
            let windowed = acts.logitWindow != nil ? acts.windowHidden : nil
            precondition(acts.logitWindow == nil || windowed != nil, "backward with a logit window needs its forward pass")
            let dhidden = windowed == nil ? dlnf : acts.dres.pointer
            Gemm.multiply(
                m: rows, n: c, k: v, a: .rowMajor(acts.dlogits.pointer, columns: v), b: .rowMajor(p.head, columns: c),
                c: dhidden, ldc: c, weight: true)
            if let g {
                Gemm.multiply(
                    m: v, n: c, k: rows, a: .transposed(acts.dlogits.pointer, columns: v),
                    b: .rowMajor(windowed?.pointer ?? acts.lnf.pointer, columns: c), c: g.head, ldc: c, accumulate: true)
            }
            if windowed != nil {
                for r in 0..<rows { copyFloats(dlnf + acts.position(ofLogitRow: r) * c, dhidden + r * c, c) }
            }
        }
        if let dValues {
            precondition(dValues.count == n && hasScalarHead, "dValues needs a scalar head and one gradient per position")
            let sw = scalarHead!.weight
            // A frozen head (adapters without one, or switched off) gets its gradient discarded.
            let lh = lora?.enabled == true ? lora?.headGradient?.baseAddress : nil
            let gw = g?.scoreW ?? lh ?? discard!, gb = g?.scoreB ?? (lh ?? discard!) + c
            for i in 0..<n where dValues[i] != 0 {
                axpy(dValues[i], sw, dlnf + i * c, c)
                axpy(dValues[i], acts.lnf.pointer + i * c, gw, c)
                gb[0] += dValues[i]
            }
        }
        let dres = acts.dres.pointer
        dres.update(repeating: 0, count: n * c)
        let last = config.nLayer > 0 ? acts.blocks[config.nLayer - 1].res3.pointer : acts.encoded.pointer
        let (dlnfw, dlnfb) = g.map { ($0.lnfw, $0.lnfb) } ?? (discard!, p.lnfb == nil ? nil : discard! + c)
        normBackward(dres, dlnfw, dlnfb, dlnf, last, p.lnfw, acts.lnfMean.pointer, acts.lnfRstd.pointer, n, acts.lnPartials)
        let llama = config.architecture.isLlamaFamily
        batch.positions.withUnsafeBufferPointer { pos in
            for l in stride(from: config.nLayer - 1, through: 0, by: -1) {
                let a = acts.blocks[l], w = p.blocks[l], gw = g?.blocks[l]
                // Frozen norms write their weight gradients where nothing reads them.
                let (dln1w, dln1b) = gw.map { ($0.ln1w, $0.ln1b) } ?? (discard!, w.ln1b == nil ? nil : discard! + c)
                let (dln2w, dln2b) = gw.map { ($0.ln2w, $0.ln2b) } ?? (discard!, w.ln2b == nil ? nil : discard! + c)
                let residualIn = l == 0 ? acts.encoded.pointer : acts.blocks[l - 1].res3.pointer
                // MLP: res3 = res2 + proj(act(fc(norm2(res2))))
                let dhid = llama ? acts.dhidden.pointer : acts.dfch.pointer
                projectBackward(dhid, gw?.fcprojw, gw?.fcprojb, dres, a.fchGelu.pointer, w.fcprojw, n, inter, c, l, .mlpOut)
                if llama {
                    swigluBackward(acts.dfch.pointer, a.fch.pointer, dhid, n, inter)
                } else {
                    geluBackward(acts.dfch.pointer, a.fch.pointer, acts.dfch.pointer, n * inter)
                }
                projectBackward(acts.dtmp.pointer, gw?.fcw, gw?.fcb, acts.dfch.pointer, a.ln2.pointer, w.fcw, n, c, config.mlpInWidth, l, .mlpIn)
                normBackward(
                    dres, dln2w, dln2b, acts.dtmp.pointer, a.res2.pointer, w.ln2w,
                    a.ln2Mean.pointer, a.ln2Rstd.pointer, n, acts.lnPartials)
                // attention: res2 = res + proj(attn(rotary(qkv(norm1(res)))))
                projectBackward(acts.dtmp.pointer, gw?.projw, gw?.projb, dres, a.atty.pointer, w.projw, n, qd, c, l, .attentionOut)
                attentionBackward(
                    acts.dqkv.pointer, acts.dtmp.pointer, a.qkv.pointer, a.att.pointer,
                    batch.batch, batch.length, heads)
                rotary?.apply(acts.dqkv.pointer, ld: qkvw, heads: config.nHead + config.nKVHead, positions: pos.baseAddress!, n: n, inverse: true)
                projectBackward(acts.dtmp.pointer, gw?.qkvw, gw?.qkvb, acts.dqkv.pointer, a.ln1.pointer, w.qkvw, n, c, qkvw, l, .qkv)
                normBackward(
                    dres, dln1w, dln1b, acts.dtmp.pointer, residualIn, w.ln1w,
                    a.ln1Mean.pointer, a.ln1Rstd.pointer, n, acts.lnPartials)
            }
        }
        guard let g else { return } // frozen embeddings
        batch.tokens.withUnsafeBufferPointer { tok in
            batch.positions.withUnsafeBufferPointer { pos in
                if let gwpe = g.wpe {
                    encoderBackward(g.wte, gwpe, dres, tok.baseAddress!, pos.baseAddress!, n, c)
                } else {
                    embeddingBackward(g.wte, dres, tok.baseAddress!, n, c)
                }
            }
        }
    }

    /// Backward of `norm`: LayerNorm when `db` is given, else RMSNorm.
    @inline(__always)
    func normBackward(
        _ dinp: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>?,
        _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ n: Int, _ partials: Scratch
    ) {
        if let db {
            layerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, n, config.nEmbd, partials)
        } else {
            rmsNormBackward(dinp, dw, dout, inp, w, rstd, n, config.nEmbd, partials)
        }
    }
}
