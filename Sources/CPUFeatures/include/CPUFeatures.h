#ifndef RLHF_CPU_FEATURES_H
#define RLHF_CPU_FEATURES_H

#include "Prefetch.h"

/// The x86-64 micro-architecture level this CPU and its operating system support: 4 for
/// x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), 3 for x86-64-v3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE),
/// 2 or 1 below that, and 0 on a CPU that is not x86-64. The check covers the whole level, not
/// one flag, because the kernel targets are compiled for the whole level.
int rlhf_x86_level(void);

/// On x86-64: the CPUID vendor string (12 characters), brand string (up to 48), and the
/// family and model numbers as the vendors display them; returns 1. Elsewhere returns 0.
int rlhf_x86_identity(char vendor[13], char brand[49], int *family, int *model);

/// On Apple systems: the `machdep.cpu.brand_string` sysctl into `buffer` (NUL-terminated);
/// returns 1. Elsewhere, or when the sysctl fails, returns 0.
int rlhf_apple_cpu_brand(char *buffer, int size);

#endif
