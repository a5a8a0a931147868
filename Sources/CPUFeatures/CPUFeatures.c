#include "CPUFeatures.h"

int rlhf_x86_level(void) {
#if defined(__x86_64__)
    // The compiler runtime reads CPUID and XGETBV, so a level counts only when the operating
    // system also saves the wider registers.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#else
    return 0;
#endif
}
