import XCTest

@testable import TransformerCore

/// The register-tiled attention kernels against a direct float64 evaluation of the formulas, at
/// shapes the golden fixtures do not reach: several 16-key chunks, head sizes that are not a
/// multiple of 16, a length that leaves a partial 4-row block, and left padding.
final class AttentionKernelTests: EveryPathTestCase {
    /// Reference forward: att[b,h,t,s] = softmax over allowed s of q_t·k_s/√hs; out = Σ att·v, with
    /// query head h reading key/value head h / (nh/nkv).
    func referenceForward(_ qkv: [Float], _ mask: [UInt8], b: Int, t: Int, _ sh: AttentionHeads) -> (out: [Double], att: [Double]) {
        let hs = sh.hs, nh = sh.nh, ld = sh.ldqkv, ldo = sh.ldout
        var out = [Double](repeating: 0, count: b * t * ldo), att = [Double](repeating: 0, count: b * nh * t * t)
        for bi in 0..<b {
            for h in 0..<nh {
                for ti in 0..<t {
                    let j = h / (nh / sh.nkv)
                    var scores = [Double](repeating: -.infinity, count: t)
                    for s in 0...ti where s == ti || mask[bi * t + s] != 0 {
                        var d = 0.0
                        for k in 0..<hs { d += Double(qkv[(bi * t + ti) * ld + h * hs + k]) * Double(qkv[(bi * t + s) * ld + (nh + j) * hs + k]) }
                        scores[s] = d / Double(hs).squareRoot()
                    }
                    let m = scores.max()!
                    let e = scores.map { $0 == -.infinity ? 0 : Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for s in 0..<t {
                        let p = e[s] / z
                        att[((bi * nh + h) * t + ti) * t + s] = p
                        for k in 0..<hs { out[(bi * t + ti) * ldo + h * hs + k] += p * Double(qkv[(bi * t + s) * ld + (nh + sh.nkv + j) * hs + k]) }
                    }
                }
            }
        }
        return (out, att)
    }

    /// GPT-2 shapes (as many key/value heads as query heads) and grouped-query shapes.
    func testForwardAndBackwardAgainstDirectFormulas() {
        forEachPath {
            for (b, t, nh, nkv, hs) in [
                (2, 37, 2, 2, 20), (1, 21, 2, 2, 32), (3, 5, 3, 3, 8), (2, 19, 4, 2, 16), (1, 23, 6, 2, 12), (2, 9, 3, 1, 10),
            ] {
                let sh = AttentionHeads(nh: nh, nkv: nkv, hs: hs)
                let ld = sh.ldqkv, ldo = sh.ldout
                var rng = SeededRandom(seed: UInt64(t * 100 + hs * nh + nkv))
                let qkv = (0..<b * t * ld).map { _ in rng.uniformFloat() * 2 - 1 }
                var mask = [UInt8](repeating: 1, count: b * t)
                for bi in 1..<max(b, 1) { for s in 0..<min(3 * bi, t - 1) { mask[bi * t + s] = 0 } } // left padding
                let dout = (0..<b * t * ldo).map { _ in rng.uniformFloat() * 2 - 1 }
                var out = [Float](repeating: .nan, count: b * t * ldo), att = [Float](repeating: .nan, count: b * nh * t * t)
                var dqkv = [Float](repeating: .nan, count: b * t * ld)
                attentionForward(&out, &att, qkv, mask, b, t, sh)
                attentionBackward(&dqkv, dout, qkv, att, b, t, sh)

                let (refOut, refAtt) = referenceForward(qkv, mask, b: b, t: t, sh)
                for i in 0..<out.count { XCTAssertEqual(Double(out[i]), refOut[i], accuracy: 1e-5, "out[\(i)] at T=\(t)") }
                for i in 0..<att.count { XCTAssertEqual(Double(att[i]), refAtt[i], accuracy: 1e-6, "att[\(i)] at T=\(t)") }

                // Reference backward of L = Σ dout·out, written from the definitions.
                var ref = [Double](repeating: 0, count: b * t * ld)
                let scale = 1 / Double(hs).squareRoot()
                for bi in 0..<b {
                    for h in 0..<nh {
                        for ti in 0..<t {
                            let j = h / (nh / nkv), kOff = (nh + j) * hs, vOff = (nh + nkv + j) * hs
                            let p = (0..<t).map { refAtt[((bi * nh + h) * t + ti) * t + $0] }
                            let dO = (0..<hs).map { Double(dout[(bi * t + ti) * ldo + h * hs + $0]) }
                            var dp = [Double](repeating: 0, count: t)
                            for s in 0..<t {
                                for k in 0..<hs {
                                    dp[s] += dO[k] * Double(qkv[(bi * t + s) * ld + vOff + k])
                                    ref[(bi * t + s) * ld + vOff + k] += p[s] * dO[k] // dV
                                }
                            }
                            let inner = zip(p, dp).map(*).reduce(0, +)
                            for s in 0..<t where p[s] != 0 {
                                let ds = p[s] * (dp[s] - inner) * scale
                                for k in 0..<hs {
                                    ref[(bi * t + ti) * ld + h * hs + k] += ds * Double(qkv[(bi * t + s) * ld + kOff + k]) // dQ
                                    ref[(bi * t + s) * ld + kOff + k] += ds * Double(qkv[(bi * t + ti) * ld + h * hs + k]) // dK
                                }
                            }
                        }
                    }
                }
                for i in 0..<dqkv.count { XCTAssertEqual(Double(dqkv[i]), ref[i], accuracy: 3e-5, "dqkv[\(i)] at T=\(t) nh \(nh) nkv \(nkv)") }
            }
        }
    }

    /// The decoding step's register-blocked scores and weighted values give the very bits of the
    /// `axpy` loops they replaced (so sampled tokens did not change), at lengths and head sizes
    /// with scalar tails, with one to four whole vectors of positions and more, and with zero
    /// probabilities skipped. The scores kernel reads and writes whole vectors, so the keys'
    /// rows and the scores have room to n rounded up to 16 (as the cache's capacity is); the
    /// floats past n are NaN, and must not reach the first n scores.
    func testDecodeAttentionMatchesAxpyLoopsBitForBit() {
        forEachPath {
            var rng = SeededRandom(seed: 5)
            for (n, hs, ld) in [(1, 16, 16), (23, 40, 40), (48, 64, 70), (37, 7, 50), (100, 64, 112), (67, 16, 80)] {
                let q = (0..<hs).map { _ in rng.uniformFloat() * 2 - 1 }
                let keys = (0..<hs * ld + 16).map { i in i % ld < n ? rng.uniformFloat() * 4 - 2 : .nan }
                let values = (0..<n * hs).map { _ in rng.uniformFloat() * 4 - 2 }
                let p = (0..<n).map { i in i % 5 == 2 ? 0 : rng.uniformFloat() }
                let scale = 1 / Float(hs).squareRoot()
                var want = [Float](repeating: 0, count: n), got = [Float](repeating: 0, count: (n + 15) / 16 * 16)
                for d in 0..<hs { axpy(q[d] * scale, keys.withUnsafeBufferPointer { $0.baseAddress! } + d * ld, &want, n) }
                Kernels.active.decodeScores(q, scale, keys, ld, hs, n, &got)
                XCTAssertEqual(got[..<n].map(\.bitPattern), want.map(\.bitPattern), "scores, n \(n), hs \(hs)")
                var wantO = [Float](repeating: 0, count: hs), gotO = [Float](repeating: 0, count: hs)
                for s in 0..<n where p[s] != 0 { axpy(p[s], values.withUnsafeBufferPointer { $0.baseAddress! } + s * hs, &wantO, hs) }
                Kernels.active.decodeWeightedValues(p, n, values, hs, &gotO)
                XCTAssertEqual(gotO.map(\.bitPattern), wantO.map(\.bitPattern), "values, n \(n), hs \(hs)")
            }
        }
    }
}
