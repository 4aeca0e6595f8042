/*
 * Scalar samplers: the reference definition of every value varinit produces.
 *
 * Word layout (stream version 2; version 1 had no uniform clamp). A group of
 * 16 Philox blocks, block index 16*g + l for lane l = 0..15, yields 64 words;
 * word w of lane l is written w_l[w]. float32 group g covers elements
 * 64g .. 64g+63:
 *   element 64g + 16w + l  <-  w_l[w]
 * (uniform and truncated normal), and for the normal the Box-Muller pair
 * (w_l[2h], w_l[2h+1]) gives elements 64g + 32h + l (cosine) and
 * 64g + 32h + 16 + l (sine). float64 group g covers 32 elements:
 *   element 32g + 16h + l  <-  the 64-bit word (w_l[2h+1] << 32) | w_l[2h]
 * and for the normal, u1 from h = 0 and the angle from h = 1 give element
 * 32g + l (cosine) and 32g + 16 + l (sine).
 * So an element depends only on (key, stream, index), and a vector unit with
 * 16 lanes computes a group with no transposes.
 */
#ifndef VI_SAMPLE_H
#define VI_SAMPLE_H

#include <stdint.h>
#include "plan.h"
#include "poly_math.h"
#include "../rng/philox.h"

/* ---- min and max: the definition every vector unit repeats --------------- */
/* x86's minps/maxps exactly (the second operand on ties and NaN); not IEEE 754
 * minimum/maximum, which put -0 below +0 and return NaN (NEON's vminq/vmaxq). */
static inline float vi_min_f32(float a, float b) { return a < b ? a : b; }
static inline float vi_max_f32(float a, float b) { return a > b ? a : b; }
static inline double vi_min_f64(double a, double b) { return a < b ? a : b; }
static inline double vi_max_f64(double a, double b) { return a > b ? a : b; }

/* ---- uniforms from raw words -------------------------------------------- */
static inline float vi_u01_f32(uint32_t w) /* [0, 1 - 2^-24] */
{
    return (float)(w >> 8) * 0x1p-24f;
}

static inline float vi_u01_open_f32(uint32_t w) /* odd multiples of 2^-24: 1 - u is exact */
{
    return (float)((w >> 8) | 1u) * 0x1p-24f;
}

static inline double vi_u01_f64(uint64_t v)
{
    return (double)(v >> 11) * 0x1p-53;
}

static inline double vi_u01_open_f64(uint64_t v)
{
    return (double)((v >> 11) | 1u) * 0x1p-53;
}

/* U(low, high): low + (high - low) u, clamped into the target dtype's [low, high)
 * (plan.c): the clamps move only the values that rounding put outside. */
static inline float vi_uniform_f32(const vi_plan *p, uint32_t w)
{
    float x = p->lo_f + p->scale_f * vi_u01_f32(w);
    return vi_min_f32(vi_max_f32(x, p->clamp_lo_f), p->clamp_hi_f);
}

static inline double vi_uniform_f64(const vi_plan *p, uint64_t v)
{
    double x = p->lo_d + p->scale_d * vi_u01_f64(v);
    return vi_min_f64(vi_max_f64(x, p->clamp_lo_d), p->clamp_hi_d);
}

/* Box-Muller radius sqrt(-2 log u1), u1 in [2^-31, 1]: at most 6.56 (float32). */
static inline float vi_bm_radius_f32(uint32_t w)
{
    float u1 = (float)(int32_t)((w >> 1) | 1u) * 0x1p-31f;
    return __builtin_sqrtf(-2.0f * vi_log_f32(u1));
}

/* u1 in [2^-53, 1): at most 8.57 (float64). */
static inline double vi_bm_radius_f64(uint64_t v)
{
    double u1 = (double)((v >> 11) | 1u) * 0x1p-53;
    return __builtin_sqrt(-2.0 * vi_log_f64(u1));
}

/* The radius at the smallest u1 in the samplers' own arithmetic: the largest |z|
 * (|cos|, |sin| <= 1). sqrt(-2 log 2^-31) = 6.5555415638 and sqrt(-2 log 2^-53)
 * = 8.5716743487 exactly; csrc/tests/test_samplers.c checks these against
 * vi_bm_radius_*(0). */
#define VI_MAX_Z_F32 6.5555415153503418 /* a float32 value, below the exact root */
#define VI_MAX_Z_F64 8.5716743486529050

/* ---- truncated normal by inverse CDF ------------------------------------ */
static inline float vi_trunc_f32(const vi_plan *p, uint32_t w)
{
    float u = vi_u01_open_f32(w);
    float from_below = p->pa_f + u * p->width_f;
    float from_above = p->qb_f + (1.0f - u) * p->width_f;
    float z = from_below <= from_above ? vi_ppnd_lower_f32(from_below)
                                       : -vi_ppnd_lower_f32(from_above);
    float x = p->lo_f + p->scale_f * z;
    x = x < p->clamp_lo_f ? p->clamp_lo_f : x;
    return x > p->clamp_hi_f ? p->clamp_hi_f : x;
}

static inline double vi_trunc_f64(const vi_plan *p, uint64_t v)
{
    double u = vi_u01_open_f64(v);
    double from_below = p->pa_d + u * p->width_d;
    double from_above = p->qb_d + (1.0 - u) * p->width_d;
    double z = from_below <= from_above ? vi_ppnd_lower_f64(from_below)
                                        : -vi_ppnd_lower_f64(from_above);
    double x = p->lo_d + p->scale_d * z;
    x = x < p->clamp_lo_d ? p->clamp_lo_d : x;
    return x > p->clamp_hi_d ? p->clamp_hi_d : x;
}

/* ---- one element, computed on its own ------------------------------------ */
static inline float vi_element_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t i)
{
    uint64_t g = i / VI_GROUP_F32;
    uint32_t j = (uint32_t)(i % VI_GROUP_F32), lane = j % 16u, w = j / 16u;
    uint32_t words[4];
    vi_philox_block(key, stream, 16u * g + lane, words);
    switch (p->dist) {
    case VI_UNIFORM:
        return vi_uniform_f32(p, words[w]);
    case VI_NORMAL: {
        uint32_t h = w / 2u;
        float r = vi_bm_radius_f32(words[2u * h]), s, c;
        vi_sincos_turn_f32(words[2u * h + 1u], &s, &c);
        return p->lo_f + p->scale_f * (r * ((w & 1u) ? s : c));
    }
    default:
        return vi_trunc_f32(p, words[w]);
    }
}

static inline double vi_element_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t i)
{
    uint64_t g = i / VI_GROUP_F64;
    uint32_t j = (uint32_t)(i % VI_GROUP_F64), lane = j % 16u, h = j / 16u;
    uint32_t words[4];
    vi_philox_block(key, stream, 16u * g + lane, words);
    uint64_t v0 = ((uint64_t)words[1] << 32) | words[0];
    uint64_t v1 = ((uint64_t)words[3] << 32) | words[2];
    switch (p->dist) {
    case VI_UNIFORM:
        return vi_uniform_f64(p, h ? v1 : v0);
    case VI_NORMAL: {
        double r = vi_bm_radius_f64(v0), s, c;
        vi_sincos_turn_f64(v1, &s, &c);
        return p->lo_d + p->scale_d * (r * (h ? s : c));
    }
    default:
        return vi_trunc_f64(p, h ? v1 : v0);
    }
}

#endif /* VI_SAMPLE_H */
