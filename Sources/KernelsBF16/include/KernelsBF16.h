#ifndef RLHF_KERNELS_BF16_H
#define RLHF_KERNELS_BF16_H

#include <stdint.h>

/// 1 when this CPU and its operating system run AVX512-BF16 (`vdpbf16ps`) besides the
/// AVX-512 level (x86-64-v4); 0 otherwise, and on every CPU that is not x86-64.
int rlhf_has_avx512bf16(void);

/// The bfloat16 product micro-kernel with the hardware instruction: C[0..<rows, 0..<32]
/// (=|+=) A·B over `kp` pairs of k, for rows 4, 8 or 12.
///
/// A's 32-bit word for row r and pair p, at `a[r·ars + p·aps]`, holds row r's bfloat16 values
/// of k = 2p (low half) and 2p+1 (high half). `b` holds, for each pair, 32 such words, one per
/// column. The tile's sums start at zero; each pair adds the odd k's
/// product, then the even k's, rounding each time (what `vdpbf16ps` does); the finished sums are
/// then stored (`mode` 0), added to C (1), or added to `bias[0..<32]` (2). `ldc` is C's row
/// stride in floats. Call it only where `rlhf_has_avx512bf16()` is 1.
void rlhf_bf16_tile(int rows, long kp, const uint32_t *a, long ars, long aps, const uint32_t *b, float *c, long ldc, int mode, const float *bias);

/// `iterations` rounds of 12 independent `vdpbf16ps` chains on 16-lane vectors (768 flops a
/// round, counting each bfloat16 multiply and add); the sums go to `sink[0..<16]` so nothing is
/// optimised away. Only where `rlhf_has_avx512bf16()` is 1.
void rlhf_bf16_peak_chains(long iterations, float *sink);

/// `iterations` rounds of 12 independent fp32 fused multiply-add chains on vectors of `width`
/// floats: 16 (AVX-512), 8 (AVX2 with FMA) or 4 (SSE2 multiply and add, no FMA); flops a round:
/// 24 · width. Call a width only where its instructions run. `sink[0..<16]` receives the sums.
void rlhf_fp32_peak_chains(int width, long iterations, float *sink);

#endif
