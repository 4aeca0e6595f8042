/*
 * Every polynomial coefficient of the sampling path, in one place.
 *
 * The scalar functions (poly_math.h) and the vector kernels
 * (simd/vector_kernels.h) both evaluate these arrays, so a coefficient cannot
 * differ between the reference and a SIMD path. Each array holds the
 * coefficients lowest degree first, c[0] + c[1] x + ... + c[n-1] x^(n-1), and
 * both sides evaluate it by Horner's scheme from the highest degree down:
 * acc = c[n-1]; acc = acc * x + c[k] for k = n-2 .. 0 (vi_poly_f32/f64 and
 * their vector twins), which fixes the order of every rounding.
 *
 * Series terms are exact facts (Taylor or atanh); the normal quantile is
 * Wichura's AS 241 (Applied Statistics 37(3):477-484, 1988), PPND7 for float32
 * and PPND16 for float64, with its coefficient names A..F.
 */
#ifndef VI_POLY_COEFFS_H
#define VI_POLY_COEFFS_H

/* ---- log(m) = 2s + 2s * z * L(z), s = (m-1)/(m+1), z = s^2 (atanh series) ---- */
static const float vi_log_series_f32[4] = {1.0f / 3.0f, 1.0f / 5.0f, 1.0f / 7.0f, 1.0f / 9.0f};
static const double vi_log_series_f64[10] = {1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11,
                                             1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21};

/* ---- sin(phi) = phi + phi * z * S(z), cos(phi) = C(z), z = phi^2 (Taylor) ---- */
static const float vi_sin_series_f32[4] = {-1.0f / 6, 1.0f / 120, -1.0f / 5040, 1.0f / 362880};
static const float vi_cos_series_f32[6] = {1.0f, -0.5f, 1.0f / 24, -1.0f / 720, 1.0f / 40320,
                                           -1.0f / 3628800};
static const double vi_sin_series_f64[8] = {-1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880,
                                            -1.0 / 39916800, 1.0 / 6227020800.0,
                                            -1.0 / 1307674368000.0, 1.0 / 355687428096000.0};
static const double vi_cos_series_f64[10] = {1.0, -0.5, 1.0 / 24, -1.0 / 720, 1.0 / 40320,
                                             -1.0 / 3628800, 1.0 / 479001600.0,
                                             -1.0 / 87178291200.0, 1.0 / 20922789888000.0,
                                             -1.0 / 6402373705728000.0};

/* ---- the normal quantile, AS 241 --------------------------------------------
 * q = p - 1/2. Central region |q| <= SPLIT1: r = CONST1 - q^2, x = q A(r) / B(r).
 * Tails: r = sqrt(-log p); r <= SPLIT2: x = C(r - CONST2) / D(r - CONST2),
 * beyond: x = E(r - SPLIT2) / F(r - SPLIT2) (negated for the lower tail). */
#define VI_PPND_SPLIT1_F 0.425f
#define VI_PPND_SPLIT2_F 5.0f
#define VI_PPND_CONST1_F 0.180625f /* SPLIT1^2 */
#define VI_PPND_CONST2_F 1.6f
#define VI_PPND_SPLIT1 0.425
#define VI_PPND_SPLIT2 5.0
#define VI_PPND_CONST1 0.180625
#define VI_PPND_CONST2 1.6

/* PPND7: about 7 significant digits, enough for float32 */
static const float vi_ppnd7_a[4] = {3.3871327179f, 50.434271938f, 159.29113202f, 59.109374720f};
static const float vi_ppnd7_b[4] = {1.0f, 17.895169469f, 78.757757664f, 67.187563600f};
static const float vi_ppnd7_c[4] = {1.4234372777f, 2.7568153900f, 1.3067284816f, 0.17023821103f};
static const float vi_ppnd7_d[3] = {1.0f, 0.73700164250f, 0.12021132975f};
static const float vi_ppnd7_e[4] = {6.6579051150f, 3.0812263860f, 0.42868294337f, 0.017337203997f};
static const float vi_ppnd7_f[3] = {1.0f, 0.24197894225f, 0.012258202635f};

/* PPND16: about 16 significant digits, for float64 */
static const double vi_ppnd16_a[8] = {
    3.3871328727963666080e+0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
    1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
    3.3430575583588128105e+4, 2.5090809287301226727e+3};
static const double vi_ppnd16_b[8] = {
    1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
    2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4,
    5.2264952788528545610e+3};
static const double vi_ppnd16_c[8] = {
    1.42343711074968357734e+0, 4.63033784615654529590e+0, 5.76949722146069140550e+0,
    3.64784832476320460504e+0, 1.27045825245236838258e+0, 2.41780725177450611770e-1,
    2.27238449892691845833e-2, 7.74545014278341407640e-4};
static const double vi_ppnd16_d[8] = {
    1.0, 2.05319162663775882187e+0, 1.67638483018380384940e+0, 6.89767334985100004550e-1,
    1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
    1.05075007164441684324e-9};
static const double vi_ppnd16_e[8] = {
    6.65790464350110377720e+0, 5.46378491116411436990e+0, 1.78482653991729133580e+0,
    2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
    2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double vi_ppnd16_f[8] = {
    1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
    7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
    2.04426310338993978564e-15};

#define VI_NCOEF(table) ((int)(sizeof(table) / sizeof((table)[0])))

#endif /* VI_POLY_COEFFS_H */
