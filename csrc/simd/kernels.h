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

/* The active table: chosen once, on first use (see dispatch.c). */
const vi_kernels *vi_active_kernels(void);

#endif /* VI_KERNELS_H */
