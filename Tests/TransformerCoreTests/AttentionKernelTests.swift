import XCTest
@testable import TransformerCore

/// The register-tiled attention kernels against a direct float64 evaluation of the formulas, at
/// shapes the golden fixtures do not reach: several 16-key chunks, head sizes that are not a
/// multiple of 16, a length that leaves a partial 4-row block, and left padding.
final class AttentionKernelTests: XCTestCase {
    /// Reference forward: att[b,h,t,s] = softmax over allowed s of q_t·k_s/√hs; out = Σ att·v.
    func referenceForward(_ qkv: [Float], _ mask: [UInt8], b: Int, t: Int, c: Int, nh: Int) -> (out: [Double], att: [Double]) {
        let hs = c / nh, c3 = 3 * c
        var out = [Double](repeating: 0, count: b * t * c), att = [Double](repeating: 0, count: b * nh * t * t)
        for bi in 0..<b { for h in 0..<nh { for ti in 0..<t {
            var scores = [Double](repeating: -.infinity, count: t)
            for s in 0...ti where s == ti || mask[bi * t + s] != 0 {
                var d = 0.0
                for k in 0..<hs { d += Double(qkv[(bi * t + ti) * c3 + h * hs + k]) * Double(qkv[(bi * t + s) * c3 + c + h * hs + k]) }
                scores[s] = d / Double(hs).squareRoot()
            }
            let m = scores.max()!
            let e = scores.map { $0 == -.infinity ? 0 : Foundation.exp($0 - m) }
            let z = e.reduce(0, +)
            for s in 0..<t {
                let p = e[s] / z
                att[((bi * nh + h) * t + ti) * t + s] = p
                for k in 0..<hs { out[(bi * t + ti) * c + h * hs + k] += p * Double(qkv[(bi * t + s) * c3 + 2 * c + h * hs + k]) }
            }
        }}}
        return (out, att)
    }

    func testForwardAndBackwardAgainstDirectFormulas() {
        for (b, t, c, nh) in [(2, 37, 40, 2), (1, 21, 64, 2), (3, 5, 24, 3)] {
            let hs = c / nh, c3 = 3 * c
            var rng = SeededRandom(seed: UInt64(t * 100 + c))
            let qkv = (0..<b * t * c3).map { _ in rng.uniformFloat() * 2 - 1 }
            var mask = [UInt8](repeating: 1, count: b * t)
            for bi in 1..<max(b, 1) { for s in 0..<min(3 * bi, t - 1) { mask[bi * t + s] = 0 } }   // left padding
            let dout = (0..<b * t * c).map { _ in rng.uniformFloat() * 2 - 1 }
            var out = [Float](repeating: .nan, count: b * t * c), att = [Float](repeating: .nan, count: b * nh * t * t)
            var dqkv = [Float](repeating: .nan, count: b * t * c3)
            attentionForward(&out, &att, qkv, mask, b, t, c, nh)
            attentionBackward(&dqkv, dout, qkv, att, b, t, c, nh)

            let (refOut, refAtt) = referenceForward(qkv, mask, b: b, t: t, c: c, nh: nh)
            for i in 0..<out.count { XCTAssertEqual(Double(out[i]), refOut[i], accuracy: 1e-5, "out[\(i)] at T=\(t)") }
            for i in 0..<att.count { XCTAssertEqual(Double(att[i]), refAtt[i], accuracy: 1e-6, "att[\(i)] at T=\(t)") }

            // Reference backward of L = Σ dout·out, written from the definitions.
            var ref = [Double](repeating: 0, count: b * t * c3)
            let scale = 1 / Double(hs).squareRoot()
            for bi in 0..<b { for h in 0..<nh { for ti in 0..<t {
                let p = (0..<t).map { refAtt[((bi * nh + h) * t + ti) * t + $0] }
                let dO = (0..<hs).map { Double(dout[(bi * t + ti) * c + h * hs + $0]) }
                var dp = [Double](repeating: 0, count: t)
                for s in 0..<t {
                    for k in 0..<hs {
                        dp[s] += dO[k] * Double(qkv[(bi * t + s) * c3 + 2 * c + h * hs + k])
                        ref[(bi * t + s) * c3 + 2 * c + h * hs + k] += p[s] * dO[k]          // dV
                    }
                }
                let inner = zip(p, dp).map(*).reduce(0, +)
                for s in 0..<t where p[s] != 0 {
                    let ds = p[s] * (dp[s] - inner) * scale
                    for k in 0..<hs {
                        ref[(bi * t + ti) * c3 + h * hs + k] += ds * Double(qkv[(bi * t + s) * c3 + c + h * hs + k])   // dQ
                        ref[(bi * t + s) * c3 + c + h * hs + k] += ds * Double(qkv[(bi * t + ti) * c3 + h * hs + k])    // dK
                    }
                }
            }}}
            for i in 0..<dqkv.count { XCTAssertEqual(Double(dqkv[i]), ref[i], accuracy: 2e-5, "dqkv[\(i)] at T=\(t)") }
        }
    }
}
