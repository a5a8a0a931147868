// The few kernels Swift cannot express: `vdpbf16ps` (AVX512-BF16) has no Swift spelling, so the
// bfloat16 product micro-kernel and the peak loops are C, each function compiled for its
// instruction set through a target attribute. Nothing here runs unless the run-time check in
// TransformerCore chose it; the rest of the bfloat16 path (packing, blocking, threads) is Swift.
#include "KernelsBF16.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define AVX512_TARGET __attribute__((target("avx512f")))
#define AVX2_TARGET __attribute__((target("avx2,fma")))

int rlhf_has_avx512bf16(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("x86-64-v4")) return 0;  // also checks the OS saves the zmm state
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;  // CPUID.(EAX=7,ECX=1):EAX[5] = AVX512_BF16
}

static inline __attribute__((always_inline)) BF16_TARGET void tile(
    const int rows, long kp, const uint32_t *a, long ars, long aps, const uint32_t *b, float *c, long ldc, int mode, const float *bias) {
    __m512 acc0[12], acc1[12];
#pragma clang loop unroll(full)
    for (int r = 0; r < 12; r++) { acc0[r] = _mm512_setzero_ps(); acc1[r] = _mm512_setzero_ps(); }
    if (mode == 1) {
        // C is read when the sums are done; ask for its lines now so they arrive meanwhile.
        for (int r = 0; r < rows; r++) { _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T1); _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T1); }
    }
    for (long p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * 32));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * 32 + 16));
        const uint32_t *ap = a + p * aps;
        // Unrolled whole, so the 24 sums stay in registers.
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)ap[r * ars]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], ar, b0);
            acc1[r] = _mm512_dpbf16_ps(acc1[r], ar, b1);
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        __m512 x0 = acc0[r], x1 = acc1[r];
        if (mode == 1) {
            x0 = _mm512_add_ps(x0, _mm512_loadu_ps(row));
            x1 = _mm512_add_ps(x1, _mm512_loadu_ps(row + 16));
        } else if (mode == 2) {
            x0 = _mm512_add_ps(x0, _mm512_loadu_ps(bias));
            x1 = _mm512_add_ps(x1, _mm512_loadu_ps(bias + 16));
        }
        _mm512_storeu_ps(row, x0);
        _mm512_storeu_ps(row + 16, x1);
    }
}

BF16_TARGET void rlhf_bf16_tile(int rows, long kp, const uint32_t *a, long ars, long aps, const uint32_t *b, float *c, long ldc, int mode, const float *bias) {
    switch (rows) {
    case 12: tile(12, kp, a, ars, aps, b, c, ldc, mode, bias); break;
    case 8: tile(8, kp, a, ars, aps, b, c, ldc, mode, bias); break;
    default: tile(4, kp, a, ars, aps, b, c, ldc, mode, bias); break;
    }
}

BF16_TARGET void rlhf_bf16_peak_chains(long iterations, float *sink) {
    __m512 s[12];
    for (int i = 0; i < 12; i++) s[i] = _mm512_set1_ps(0);
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);  // (1, 1) in bfloat16
    __m512bh y = (__m512bh)_mm512_set1_epi32(0x1f801f80);  // (2^-64, 2^-64): the sums stay small
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) s[i] = _mm512_dpbf16_ps(s[i], x, y);
        __asm__ volatile("" : "+v"(s[0]), "+v"(s[1]), "+v"(s[2]), "+v"(s[3]), "+v"(s[4]), "+v"(s[5]));
    }
    __m512 t = s[0];
    for (int i = 1; i < 12; i++) t = _mm512_add_ps(t, s[i]);
    _mm512_storeu_ps(sink, t);
}

AVX512_TARGET static void rlhf_fp32_peak16(long iterations, float *sink) {
    __m512 s[12];
    for (int i = 0; i < 12; i++) s[i] = _mm512_set1_ps((float)i);
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) s[i] = _mm512_fmadd_ps(s[i], x, y);
        __asm__ volatile("" : "+v"(s[0]), "+v"(s[1]), "+v"(s[2]), "+v"(s[3]), "+v"(s[4]), "+v"(s[5]));
    }
    __m512 t = s[0];
    for (int i = 1; i < 12; i++) t = _mm512_add_ps(t, s[i]);
    _mm512_storeu_ps(sink, t);
}

AVX2_TARGET static void rlhf_fp32_peak8(long iterations, float *sink) {
    __m256 s[12];
    for (int i = 0; i < 12; i++) s[i] = _mm256_set1_ps((float)i);
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) s[i] = _mm256_fmadd_ps(s[i], x, y);
        __asm__ volatile("" : "+x"(s[0]), "+x"(s[1]), "+x"(s[2]), "+x"(s[3]), "+x"(s[4]), "+x"(s[5]));
    }
    __m256 t = s[0];
    for (int i = 1; i < 12; i++) t = _mm256_add_ps(t, s[i]);
    _mm256_storeu_ps(sink, t);
    memset(sink + 8, 0, 8 * sizeof(float));
}

static void rlhf_fp32_peak4(long iterations, float *sink) {
    __m128 s[12];
    for (int i = 0; i < 12; i++) s[i] = _mm_set1_ps((float)i);
    __m128 x = _mm_set1_ps(0.999999f), y = _mm_set1_ps(1e-7f);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) s[i] = _mm_add_ps(_mm_mul_ps(s[i], x), y);
        __asm__ volatile("" : "+x"(s[0]), "+x"(s[1]), "+x"(s[2]), "+x"(s[3]), "+x"(s[4]), "+x"(s[5]));
    }
    __m128 t = s[0];
    for (int i = 1; i < 12; i++) t = _mm_add_ps(t, s[i]);
    _mm_storeu_ps(sink, t);
    memset(sink + 4, 0, 12 * sizeof(float));
}

void rlhf_fp32_peak_chains(int width, long iterations, float *sink) {
    if (width == 16) rlhf_fp32_peak16(iterations, sink);
    else if (width == 8) rlhf_fp32_peak8(iterations, sink);
    else rlhf_fp32_peak4(iterations, sink);
}

#else

int rlhf_has_avx512bf16(void) { return 0; }

void rlhf_bf16_tile(int rows, long kp, const uint32_t *a, long ars, long aps, const uint32_t *b, float *c, long ldc, int mode, const float *bias) {
    (void)rows; (void)kp; (void)a; (void)ars; (void)aps; (void)b; (void)c; (void)ldc; (void)mode; (void)bias;
    __builtin_trap();  // never chosen: rlhf_has_avx512bf16() is 0
}

void rlhf_bf16_peak_chains(long iterations, float *sink) {
    (void)iterations; (void)sink;
    __builtin_trap();
}

void rlhf_fp32_peak_chains(int width, long iterations, float *sink) {
    // 4-float multiply-add chains in plain C (NEON on arm64), 12 independent.
    (void)width;
    float s[12][4];
    for (int i = 0; i < 12; i++) for (int l = 0; l < 4; l++) s[i][l] = (float)i;
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 12; i++) for (int l = 0; l < 4; l++) s[i][l] = s[i][l] * 0.999999f + 1e-7f;
        __asm__ volatile("" : : "r"(s) : "memory");
    }
    for (int l = 0; l < 16; l++) sink[l] = l < 4 ? s[0][l] : 0;
}

#endif
