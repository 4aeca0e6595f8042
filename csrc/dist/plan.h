/*
 * A distribution prepared for sampling: every constant the kernels need,
 * computed once per fill (in double, then rounded to the compute type).
 */
#ifndef VI_PLAN_H
#define VI_PLAN_H

#include <stdint.h>
#include "varinit.h"

typedef struct {
    int dist;       /* a vi_dist; a degenerate distribution becomes VI_UNIFORM with scale 0 */
    int compute64;  /* float32-based outputs computed in float64 and rounded: truncation
                       intervals too far out for float32 probabilities */
    /* uniform: lo + scale * u; normal and truncated normal: lo + scale * z */
    float lo_f, scale_f;
    double lo_d, scale_d;
    /* truncated normal, standardized: p = pa + u * width from below, or
     * q = qb + (1 - u) * width from above, whichever is smaller (so both tails keep
     * full relative precision). */
    float pa_f, qb_f, width_f;
    double pa_d, qb_d, width_d;
    /* uniform and truncated normal results are clamped to [clamp_lo, clamp_hi]: for
     * the truncated normal [a, b]; for the uniform the smallest value of the target
     * dtype >= low and the largest one < high (a float16/bfloat16 value is a float32
     * value, so the float32 result clamped to them rounds into [low, high) too). */
    float clamp_lo_f, clamp_hi_f;
    double clamp_lo_d, clamp_hi_d;
} vi_plan;

/* Elements per group: a group is 16 Philox blocks (64 words). float32 samples
 * take one word each, float64 samples two. */
#define VI_GROUP_F32 64u
#define VI_GROUP_F64 32u

/* The plan for filling an array of `dtype` (a vi_dtype) with the distribution. */
vi_status vi_plan_prepare(const vi_params *params, int dtype, vi_plan *plan);

#endif /* VI_PLAN_H */
