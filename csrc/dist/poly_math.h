/*
 * The project's own elementary functions for the sampling path.
 *
 * No libm: glibc, musl, macOS and MSVC disagree in the last bit of log, sin and
 * cos, and the random-number contract promises the same bits everywhere. Every
 * function here uses only +, -, *, /, sqrt and integer bit operations, in a
 * fixed order, so a SIMD kernel that performs the same operations lane by lane
 * (with -ffp-contract=off, no FMA) produces identical results.
 *
 * Coefficients are Taylor or atanh series terms (exact facts), except the
 * rational approximations of the normal quantile, which are Wichura's
 * AS 241 (Applied Statistics 37(3):477-484, 1988): PPND7 for float32 and
 * PPND16 for float64.
 */
#ifndef VI_POLY_MATH_H
#define VI_POLY_MATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t vi_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float vi_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline uint64_t vi_f64_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double vi_bits_f64(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }

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
    float p = z * (1.0f / 3.0f + z * (1.0f / 5.0f + z * (1.0f / 7.0f + z * (1.0f / 9.0f))));
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
    double p = z * (1.0 / 3 + z * (1.0 / 5 + z * (1.0 / 7 + z * (1.0 / 9 + z * (1.0 / 11
             + z * (1.0 / 13 + z * (1.0 / 15 + z * (1.0 / 17 + z * (1.0 / 19 + z * (1.0 / 21))))))))));
    double logm = 2.0 * s + 2.0 * s * p;
    double kf = (double)k;
    return kf * VI_LN2_HI + (kf * VI_LN2_LO + logm);
}

/* ---- sin and cos of phi in [0, pi/4] (Taylor) ---------------------------- */
static inline void vi_sincos_octant_f32(float phi, float *s, float *c)
{
    float z = phi * phi;
    *s = phi + phi * (z * (-1.0f / 6 + z * (1.0f / 120 + z * (-1.0f / 5040 + z * (1.0f / 362880)))));
    *c = 1.0f + z * (-0.5f + z * (1.0f / 24 + z * (-1.0f / 720 + z * (1.0f / 40320 + z * (-1.0f / 3628800)))));
}

static inline void vi_sincos_octant_f64(double phi, double *s, double *c)
{
    double z = phi * phi;
    *s = phi + phi * (z * (-1.0 / 6 + z * (1.0 / 120 + z * (-1.0 / 5040 + z * (1.0 / 362880
         + z * (-1.0 / 39916800 + z * (1.0 / 6227020800.0 + z * (-1.0 / 1307674368000.0
         + z * (1.0 / 355687428096000.0)))))))));
    *c = 1.0 + z * (-0.5 + z * (1.0 / 24 + z * (-1.0 / 720 + z * (1.0 / 40320
         + z * (-1.0 / 3628800 + z * (1.0 / 479001600.0 + z * (-1.0 / 87178291200.0
         + z * (1.0 / 20922789888000.0 + z * (-1.0 / 6402373705728000.0)))))))));
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
    if (q >= -0.425f) {
        float r = 0.180625f - q * q;
        float num = q * (((59.109374720f * r + 159.29113202f) * r + 50.434271938f) * r + 3.3871327179f);
        float den = ((67.187563600f * r + 78.757757664f) * r + 17.895169469f) * r + 1.0f;
        return num / den;
    }
    float r = __builtin_sqrtf(-vi_log_f32(p));
    if (r <= 5.0f) {
        r = r - 1.6f;
        float num = ((0.17023821103f * r + 1.3067284816f) * r + 2.7568153900f) * r + 1.4234372777f;
        float den = (0.12021132975f * r + 0.73700164250f) * r + 1.0f;
        return -(num / den);
    }
    r = r - 5.0f;
    float num = ((0.017337203997f * r + 0.42868294337f) * r + 3.0812263860f) * r + 6.6579051150f;
    float den = (0.012258202635f * r + 0.24197894225f) * r + 1.0f;
    return -(num / den);
}

static inline double vi_ppnd_lower_f64(double p)
{
    double q = p - 0.5;
    if (q >= -0.425) {
        double r = 0.180625 - q * q;
        double num = q * (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r
                     + 6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r
                     + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
                     + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0);
        double den = ((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r
                     + 3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r
                     + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
                     + 4.2313330701600911252e+1) * r + 1.0;
        return num / den;
    }
    double r = __builtin_sqrt(-vi_log_f64(p));
    if (r <= 5.0) {
        r = r - 1.6;
        double num = ((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                     + 2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r
                     + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
                     + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0;
        double den = ((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                     + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
                     + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
                     + 2.05319162663775882187e+0) * r + 1.0;
        return -(num / den);
    }
    r = r - 5.0;
    double num = ((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                 + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
                 + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r
                 + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0;
    double den = ((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                 + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
                 + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
                 + 5.99832206555887937690e-1) * r + 1.0;
    return -(num / den);
}

#endif /* VI_POLY_MATH_H */
