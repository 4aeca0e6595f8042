/*
 * The project's own elementary functions for the sampling path.
 *
 * No libm: glibc, musl, macOS and MSVC disagree in the last bit of log, sin and
 * cos, and the random-number contract promises the same bits everywhere. Every
 * function here uses only +, -, *, /, sqrt and integer bit operations, in a
 * fixed order, so a SIMD kernel that performs the same operations lane by lane
 * (with -ffp-contract=off, no FMA) produces identical results.
 *
 * The coefficients are in poly_coeffs.h, shared with the vector kernels.
 */
#ifndef VI_POLY_MATH_H
#define VI_POLY_MATH_H

#include <stdint.h>
#include <string.h>
#include "poly_coeffs.h"

static inline uint32_t vi_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float vi_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline uint64_t vi_f64_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double vi_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

/* Horner's scheme over a table of poly_coeffs.h (lowest degree first), from
 * the highest degree down: the order the vector twins in simd/vector_kernels.h
 * repeat. The loops are unrolled, so each coefficient becomes an immediate. */
static inline float vi_poly_f32(const float *c, int n, float x)
{
    float acc = c[n - 1];
#pragma GCC unroll 16
    for (int k = n - 2; k >= 0; k--)
        acc = acc * x + c[k];
    return acc;
}

static inline double vi_poly_f64(const double *c, int n, double x)
{
    double acc = c[n - 1];
#pragma GCC unroll 16
    for (int k = n - 2; k >= 0; k--)
        acc = acc * x + c[k];
    return acc;
}

/* ---- log of a positive normal number ------------------------------------ */
/* x = 2^k * m with m in [sqrt(2)/2, sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1),
 * expanded as 2s(1 + s^2/3 + s^4/5 + ...). |s| <= 0.1716, so the series
 * converges fast; m - 1 is exact (Sterbenz). */
#define VI_LN2_HI_F 0.693145751953125f        /* few bits: k * hi is exact */
#define VI_LN2_LO_F 1.428606765330187e-06f
#define VI_SQRT_HALF_BITS_F 0x3f3504f3u

static inline float vi_log_f32(float x)
{
    uint32_t ix = vi_f32_bits(x) + (0x3f800000u - VI_SQRT_HALF_BITS_F);
    int32_t k = (int32_t)(ix >> 23) - 127;
    float m = vi_bits_f32((ix & 0x007fffffu) + VI_SQRT_HALF_BITS_F);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float p = z * vi_poly_f32(vi_log_series_f32, VI_NCOEF(vi_log_series_f32), z);
    float logm = 2.0f * s + 2.0f * s * p;
    float kf = (float)k;
    return kf * VI_LN2_HI_F + (kf * VI_LN2_LO_F + logm);
}

#define VI_LN2_HI 6.93147180369123816490e-01 /* 0x3fe62e42fee00000 */
#define VI_LN2_LO 1.90821492927058770002e-10
#define VI_SQRT_HALF_BITS 0x3fe6a09e667f3bcdull

static inline double vi_log_f64(double x)
{
    uint64_t ix = vi_f64_bits(x) + (0x3ff0000000000000ull - VI_SQRT_HALF_BITS);
    int64_t k = (int64_t)(ix >> 52) - 1023;
    double m = vi_bits_f64((ix & 0x000fffffffffffffull) + VI_SQRT_HALF_BITS);
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double p = z * vi_poly_f64(vi_log_series_f64, VI_NCOEF(vi_log_series_f64), z);
    double logm = 2.0 * s + 2.0 * s * p;
    double kf = (double)k;
    return kf * VI_LN2_HI + (kf * VI_LN2_LO + logm);
}

/* ---- sin and cos of phi in [0, pi/4] (Taylor) ---------------------------- */
static inline void vi_sincos_octant_f32(float phi, float *s, float *c)
{
    float z = phi * phi;
    *s = phi + phi * (z * vi_poly_f32(vi_sin_series_f32, VI_NCOEF(vi_sin_series_f32), z));
    *c = vi_poly_f32(vi_cos_series_f32, VI_NCOEF(vi_cos_series_f32), z);
}

static inline void vi_sincos_octant_f64(double phi, double *s, double *c)
{
    double z = phi * phi;
    *s = phi + phi * (z * vi_poly_f64(vi_sin_series_f64, VI_NCOEF(vi_sin_series_f64), z));
    *c = vi_poly_f64(vi_cos_series_f64, VI_NCOEF(vi_cos_series_f64), z);
}

/* (sin, cos) of the angle given by a fraction of a turn, quadrant first.
 * quadrant in 0..3; t in [0, 2^bits) is the position inside the quadrant.
 * The upper half of a quadrant uses the complementary angle (exact: 2^bits - t),
 * so the polynomial only ever sees [0, pi/4]. */
#define VI_PI_2_F 1.57079632679489661923f
#define VI_PI_2 1.57079632679489661923

static inline void vi_rotate_quadrant_f32(uint32_t quadrant, float s0, float c0, float *s, float *c)
{
    /* sin/cos of (quadrant * pi/2 + angle) from sin/cos of the angle */
    switch (quadrant & 3u) {
    case 0: *s = s0; *c = c0; break;
    case 1: *s = c0; *c = -s0; break;
    case 2: *s = -s0; *c = -c0; break;
    default: *s = -c0; *c = s0; break;
    }
}

static inline void vi_sincos_turn_f32(uint32_t w, float *s, float *c)
{
    uint32_t quadrant = w >> 30;
    uint32_t t = (w >> 6) & 0xFFFFFFu; /* 24 bits inside the quadrant */
    int upper = t > 0x800000u;
    float g = (float)(upper ? 0x1000000u - t : t) * 0x1p-24f; /* in [0, 0.5] */
    float so, co;
    vi_sincos_octant_f32(g * VI_PI_2_F, &so, &co);
    vi_rotate_quadrant_f32(quadrant, upper ? co : so, upper ? so : co, s, c);
}

static inline void vi_sincos_turn_f64(uint64_t v, double *s, double *c)
{
    uint32_t quadrant = (uint32_t)(v >> 62);
    uint64_t t = (v >> 9) & ((1ull << 53) - 1); /* 53 bits inside the quadrant */
    int upper = t > (1ull << 52);
    double g = (double)(upper ? (1ull << 53) - t : t) * 0x1p-53;
    double so, co, s0, c0;
    vi_sincos_octant_f64(g * VI_PI_2, &so, &co);
    s0 = upper ? co : so;
    c0 = upper ? so : co;
    switch (quadrant) {
    case 0: *s = s0; *c = c0; break;
    case 1: *s = c0; *c = -s0; break;
    case 2: *s = -s0; *c = -c0; break;
    default: *s = -c0; *c = s0; break;
    }
}

/* ---- normal quantile for the lower half, p in (0, ~0.5] ------------------ */
/* AS 241. The tail branch is only reached for p < 0.075, so its sign is fixed. */
static inline float vi_ppnd_lower_f32(float p)
{
    float q = p - 0.5f;
    if (q >= -VI_PPND_SPLIT1_F) {
        float r = VI_PPND_CONST1_F - q * q;
        float num = q * vi_poly_f32(vi_ppnd7_a, VI_NCOEF(vi_ppnd7_a), r);
        float den = vi_poly_f32(vi_ppnd7_b, VI_NCOEF(vi_ppnd7_b), r);
        return num / den;
    }
    float r = __builtin_sqrtf(-vi_log_f32(p));
    if (r <= VI_PPND_SPLIT2_F) {
        r = r - VI_PPND_CONST2_F;
        float num = vi_poly_f32(vi_ppnd7_c, VI_NCOEF(vi_ppnd7_c), r);
        float den = vi_poly_f32(vi_ppnd7_d, VI_NCOEF(vi_ppnd7_d), r);
        return -(num / den);
    }
    r = r - VI_PPND_SPLIT2_F;
    float num = vi_poly_f32(vi_ppnd7_e, VI_NCOEF(vi_ppnd7_e), r);
    float den = vi_poly_f32(vi_ppnd7_f, VI_NCOEF(vi_ppnd7_f), r);
    return -(num / den);
}

static inline double vi_ppnd_lower_f64(double p)
{
    double q = p - 0.5;
    if (q >= -VI_PPND_SPLIT1) {
        double r = VI_PPND_CONST1 - q * q;
        double num = q * vi_poly_f64(vi_ppnd16_a, VI_NCOEF(vi_ppnd16_a), r);
        double den = vi_poly_f64(vi_ppnd16_b, VI_NCOEF(vi_ppnd16_b), r);
        return num / den;
    }
    double r = __builtin_sqrt(-vi_log_f64(p));
    if (r <= VI_PPND_SPLIT2) {
        r = r - VI_PPND_CONST2;
        double num = vi_poly_f64(vi_ppnd16_c, VI_NCOEF(vi_ppnd16_c), r);
        double den = vi_poly_f64(vi_ppnd16_d, VI_NCOEF(vi_ppnd16_d), r);
        return -(num / den);
    }
    r = r - VI_PPND_SPLIT2;
    double num = vi_poly_f64(vi_ppnd16_e, VI_NCOEF(vi_ppnd16_e), r);
    double den = vi_poly_f64(vi_ppnd16_f, VI_NCOEF(vi_ppnd16_f), r);
    return -(num / den);
}

#endif /* VI_POLY_MATH_H */
