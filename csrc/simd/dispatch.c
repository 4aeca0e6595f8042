/*
 * Choosing the kernel table once, on first use. One build runs on every
 * x86-64 machine (the AVX2 and AVX-512 kernels are compiled with target
 * attributes, not global flags), so the choice must be made at run time, and
 * once: a fill must not pay for CPUID, and the table must not change between
 * two calls.
 *
 * x86-64: CPUID gives the instruction sets the processor has, but AVX and
 * AVX-512 registers are usable only if the OS saves their state on context
 * switches, which XGETBV (XCR0) tells: bits 1-2 (SSE, AVX) for the 256-bit
 * registers, and also bits 5-7 (opmask, upper ZMM halves, ZMM16-31) for
 * AVX-512. A table is chosen only when both agree. AArch64: NEON (Advanced
 * SIMD) is part of the base architecture.
 *
 * VARINIT_ISA=scalar|avx2|avx512|neon forces a table; an unknown name or one
 * this machine cannot run leaves no active table and an error message instead
 * (the Python module refuses to import with it; vi_fill returns VI_EISA).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#ifdef VI_HAVE_X86_KERNELS
#include <cpuid.h>
#endif

#ifdef VI_HAVE_X86_KERNELS
enum { F_SSE2, F_AVX, F_FMA, F_AVX2, F_AVX512F, F_AVX512DQ, F_AVX512BW, F_AVX512VL,
       F_OS_AVX, F_OS_AVX512, F_COUNT };
static vi_cpu_feature features[F_COUNT] = {
    {"sse2", 0}, {"avx", 0}, {"fma", 0}, {"avx2", 0}, {"avx512f", 0}, {"avx512dq", 0},
    {"avx512bw", 0}, {"avx512vl", 0}, {"os_avx", 0}, {"os_avx512", 0},
};

static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    features[F_SSE2].present = (d >> 26) & 1;
    features[F_AVX].present = (c >> 28) & 1;
    features[F_FMA].present = (c >> 12) & 1;
    if ((c >> 27) & 1) { /* OSXSAVE: XGETBV is allowed */
        unsigned long long xcr0 = read_xcr0();
        features[F_OS_AVX].present = (xcr0 & 0x6) == 0x6;
        features[F_OS_AVX512].present = (xcr0 & 0xe6) == 0xe6;
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        features[F_AVX2].present = (b >> 5) & 1;
        features[F_AVX512F].present = (b >> 16) & 1;
        features[F_AVX512DQ].present = (b >> 17) & 1;
        features[F_AVX512BW].present = (b >> 30) & 1;
        features[F_AVX512VL].present = (b >> 31) & 1;
    }
}

static int runs(const char *isa)
{
    if (strcmp(isa, "avx512") == 0)
        return features[F_AVX512F].present && features[F_AVX512DQ].present
            && features[F_OS_AVX512].present;
    if (strcmp(isa, "avx2") == 0)
        return features[F_AVX].present && features[F_AVX2].present && features[F_OS_AVX].present;
    return strcmp(isa, "scalar") == 0;
}

/* best first */
static const vi_kernels *const candidates[] = {&vi_kernels_avx512, &vi_kernels_avx2,
                                              &vi_kernels_scalar};
#elif defined(__aarch64__)
static vi_cpu_feature features[] = {{"neon", 1}};
#define F_COUNT 1
static void detect(void) {}
static int runs(const char *isa) { return strcmp(isa, "neon") == 0 || strcmp(isa, "scalar") == 0; }
static const vi_kernels *const candidates[] = {&vi_kernels_neon, &vi_kernels_scalar};
#else
static vi_cpu_feature features[] = {{"none", 0}};
#define F_COUNT 0
static void detect(void) {}
static int runs(const char *isa) { return strcmp(isa, "scalar") == 0; }
static const vi_kernels *const candidates[] = {&vi_kernels_scalar};
#endif

#define N_CANDIDATES (sizeof candidates / sizeof candidates[0])
#define KNOWN_ISAS "scalar, avx2, avx512, neon"

static struct {
    const vi_kernels *active;
    const char *available[N_CANDIDATES + 1];
    char error[256];
} state;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const vi_kernels *lookup(const char *name)
{
    for (size_t k = 0; k < N_CANDIDATES; k++)
        if (strcmp(candidates[k]->name, name) == 0 && runs(name))
            return candidates[k];
    return NULL;
}

static void choose(void)
{
    size_t n = 0;
    detect();
    for (size_t k = 0; k < N_CANDIDATES; k++)
        if (runs(candidates[k]->name))
            state.available[n++] = candidates[k]->name;
    state.available[n] = NULL;
    const char *forced = getenv("VARINIT_ISA");
    if (!forced || !*forced) {
        state.active = lookup(state.available[0]); /* scalar always runs */
        return;
    }
    state.active = lookup(forced);
    if (state.active)
        return;
    char list[64] = "";
    for (size_t k = 0; k < n; k++) {
        strcat(list, k ? ", " : "");
        strcat(list, state.available[k]);
    }
    if (strcmp(forced, "scalar") == 0 || strcmp(forced, "avx2") == 0
        || strcmp(forced, "avx512") == 0 || strcmp(forced, "neon") == 0)
        snprintf(state.error, sizeof state.error,
                 "VARINIT_ISA=%.40s: this CPU (or its OS) cannot run it; it supports: %s",
                 forced, list);
    else
        snprintf(state.error, sizeof state.error,
                 "VARINIT_ISA=%.40s: unknown instruction set; expected one of %s "
                 "(this CPU supports: %s)", forced, KNOWN_ISAS, list);
}

const vi_kernels *vi_kernels_for_isa(const char *name)
{
    pthread_once(&once, choose);
    return name ? lookup(name) : NULL;
}

const vi_kernels *vi_active_kernels(void)
{
    pthread_once(&once, choose);
    return state.active;
}

const char *vi_isa(void)
{
    const vi_kernels *k = vi_active_kernels();
    return k ? k->name : NULL;
}

const char *vi_isa_error(void)
{
    pthread_once(&once, choose);
    return state.active ? NULL : state.error;
}

const char *const *vi_available_isas(void)
{
    pthread_once(&once, choose);
    return state.available;
}

const vi_cpu_feature *vi_cpu_features(int *count)
{
    pthread_once(&once, choose);
    *count = F_COUNT;
    return features;
}
