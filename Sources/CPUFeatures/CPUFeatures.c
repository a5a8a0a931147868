#include "CPUFeatures.h"
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

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

int rlhf_x86_identity(char vendor[13], char brand[49], int *family, int *model) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    memset(vendor, 0, 13);
    memset(brand, 0, 49);
    *family = 0; *model = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    memcpy(vendor, &b, 4); memcpy(vendor + 4, &d, 4); memcpy(vendor + 8, &c, 4);
    if (a >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
        // The displayed family and model, as the vendors' manuals define them: the extended
        // fields count only for base family 15 (family) or 6 and 15 (model).
        int baseFamily = (a >> 8) & 0xF, baseModel = (a >> 4) & 0xF;
        *family = baseFamily == 0xF ? baseFamily + ((a >> 20) & 0xFF) : baseFamily;
        *model = (baseFamily == 0x6 || baseFamily == 0xF) ? baseModel + (((a >> 16) & 0xF) << 4) : baseModel;
    }
    unsigned top = __get_cpuid_max(0x80000000, 0);
    if (top >= 0x80000004) {
        for (unsigned leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &a, &b, &c, &d);
            memcpy(brand + 16 * leaf, &a, 4); memcpy(brand + 16 * leaf + 4, &b, 4);
            memcpy(brand + 16 * leaf + 8, &c, 4); memcpy(brand + 16 * leaf + 12, &d, 4);
        }
    }
    return 1;
#else
    (void)vendor; (void)brand; (void)family; (void)model;
    return 0;
#endif
}

int rlhf_apple_cpu_brand(char *buffer, int size) {
#if defined(__APPLE__)
    size_t length = (size_t)size;
    if (sysctlbyname("machdep.cpu.brand_string", buffer, &length, NULL, 0) != 0) return 0;
    buffer[size - 1] = 0;
    return 1;
#else
    (void)buffer; (void)size;
    return 0;
#endif
}
