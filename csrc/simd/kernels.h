/*
 * The kernel table: one implementation per instruction set, all producing the
 * bits defined by dist/sample.h. A kernel fills `ngroups` whole groups starting
 * at group `group0` into out (no alignment assumed).
 */
#ifndef VI_KERNELS_H
#define VI_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "../dist/plan.h"

typedef void (*vi_groups_f32_fn)(const vi_plan *plan, uint64_t key, uint64_t stream,
                                 uint64_t group0, size_t ngroups, float *out);
typedef void (*vi_groups_f64_fn)(const vi_plan *plan, uint64_t key, uint64_t stream,
                                 uint64_t group0, size_t ngroups, double *out);

typedef struct {
    const char *name;
    vi_groups_f32_fn f32[3]; /* indexed by vi_dist */
    vi_groups_f64_fn f64[3];
} vi_kernels;

extern const vi_kernels vi_kernels_scalar;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VI_HAVE_X86_KERNELS 1
extern const vi_kernels vi_kernels_avx2;   /* avx2.c */
extern const vi_kernels vi_kernels_avx512; /* avx512.c: AVX-512F + DQ */
#endif
#if defined(__aarch64__)
extern const vi_kernels vi_kernels_neon;   /* neon.c */
#endif

/* ---- dispatch.c: CPU detection and the choice of table, done once ----
 * (vi_isa, vi_isa_error, vi_available_isas and vi_cpu_features are public:
 * varinit.h) */

/* The table named `name` ("scalar", "avx2", "avx512", "neon") if this build
 * has it and this CPU and OS can run it; NULL otherwise. */
const vi_kernels *vi_kernels_for_isa(const char *name);

/* The active table: the best one, or the one the environment variable
 * VARINIT_ISA names. NULL when VARINIT_ISA names an unknown instruction set or
 * one this machine cannot run; vi_isa_error() then says why. */
const vi_kernels *vi_active_kernels(void);

#endif /* VI_KERNELS_H */
