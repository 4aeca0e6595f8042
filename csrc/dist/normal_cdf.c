/*
 * The standard normal CDF and truncated-normal moments for setup constants.
 *
 * Computed without libm (floor aside, which is exact) so that the constants a
 * fill derives from its parameters are the same bits on every platform.
 * Phi(-t) for t >= 0 comes from the series Phi(-t) = 1/2 - phi(t) * sum
 * t^(2n+1)/(2n+1)!! when t < 2 (all terms positive, no cancellation inside the
 * sum), and from Laplace's continued fraction
 * Phi(-t) = phi(t) / (t + 1/(t + 2/(t + 3/(t + ...)))) when t >= 2
 * (Abramowitz & Stegun 26.2.14); both give about 1e-15 relative accuracy.
 */
#include <math.h>
#include "varinit.h"
#include "poly_math.h"

#define VI_INV_SQRT_2PI 0.39894228040143267794
#define VI_INV_LN2 1.44269504088896340736
#define VI_CF_TERMS 120

/* exp(x) by exp(x) = 2^k exp(r), |r| <= ln2/2, Taylor to degree 13. */
static double setup_exp(double x)
{
    if (x < -745.2)
        return 0.0;
    if (x > 709.7)
        return HUGE_VAL;
    double kf = floor(x * VI_INV_LN2 + 0.5);
    double r = (x - kf * VI_LN2_HI) - kf * VI_LN2_LO;
    double e = 1.0;
    for (int n = 13; n >= 1; n--)
        e = 1.0 + e * r / n;
    /* scale by 2^k in two exact steps so subnormal results round once */
    int k = (int)kf;
    int k1 = k / 2, k2 = k - k1;
    e *= vi_bits_f64((uint64_t)(k1 + 1023) << 52);
    return e * vi_bits_f64((uint64_t)(k2 + 1023) << 52);
}

static double std_normal_pdf(double t)
{
    return VI_INV_SQRT_2PI * setup_exp(-0.5 * t * t);
}

/* Phi(-t) for t >= 0 (may be +inf). */
static double lower_tail(double t)
{
    if (t > 38.6)
        return 0.0; /* below the smallest subnormal double */
    if (t < 2.0) {
        double term = t, sum = t;
        for (int n = 1; term > 1e-17 * sum; n++) {
            term *= t * t / (2 * n + 1);
            sum += term;
        }
        return 0.5 - std_normal_pdf(t) * sum;
    }
    double f = t;
    for (int k = VI_CF_TERMS; k >= 1; k--)
        f = t + k / f;
    return std_normal_pdf(t) / f;
}

double vi_normal_cdf(double x)
{
    if (x != x)
        return x;
    return x <= 0 ? lower_tail(-x) : 1.0 - lower_tail(x);
}

/* Probability of [alpha, beta] under N(0, 1), each side's tail kept precise. */
double vi_normal_interval_mass(double alpha, double beta)
{
    if (beta <= 0)
        return lower_tail(-beta) - lower_tail(-alpha);
    if (alpha >= 0)
        return lower_tail(alpha) - lower_tail(beta);
    return 1.0 - lower_tail(-alpha) - lower_tail(beta);
}

static double pdf_or_zero(double x) /* phi(x), 0 at +-inf */
{
    return isinf(x) ? 0.0 : std_normal_pdf(x);
}

static double x_pdf_or_zero(double x) /* x phi(x), 0 at +-inf */
{
    return isinf(x) ? 0.0 : x * std_normal_pdf(x);
}

vi_status vi_truncnorm_moments(double alpha, double beta, double *mean, double *var)
{
    if (alpha != alpha || beta != beta || !(alpha < beta))
        return VI_EINVAL_PARAM;
    double mass = vi_normal_interval_mass(alpha, beta);
    if (!(mass > 1e-300))
        return VI_ETAIL;
    double m = (pdf_or_zero(alpha) - pdf_or_zero(beta)) / mass;
    *mean = m;
    *var = 1.0 + (x_pdf_or_zero(alpha) - x_pdf_or_zero(beta)) / mass - m * m;
    return VI_OK;
}
