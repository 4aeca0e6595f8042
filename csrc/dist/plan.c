/* Turning user parameters into the constants the kernels use. */
#include <math.h>
#include "plan.h"
#include "convert.h"

double vi_normal_interval_mass(double alpha, double beta); /* normal_cdf.c */

/* A float32 probability must stay a normal float32 after multiplying by 2^-24,
 * or the float32 path loses the tail; such intervals use the float64 path. */
#define VI_F32_MIN_MASS 1e-30
#define VI_F64_MIN_MASS 1e-300

static void set_constant(vi_plan *plan, double value)
{
    plan->dist = VI_UNIFORM;
    plan->lo_d = value;
    plan->scale_d = 0.0;
    plan->lo_f = (float)value;
    plan->scale_f = 0.0f;
    plan->clamp_lo_d = plan->clamp_lo_f = -INFINITY;
    plan->clamp_hi_d = plan->clamp_hi_f = INFINITY;
}

/* ---- the values of a dtype, as doubles ------------------------------------ */
/* A value of the dtype next to x (the nearest, or a neighbour of it after a
 * double rounding: callers step from it until it is on the right side). */
static double dtype_near(int dtype, double x)
{
    switch (dtype) {
    case VI_F64: return x;
    case VI_F32: return (float)x;
    case VI_F16: return vi_f16_to_f32(vi_f32_to_f16((float)x));
    default: return vi_bf16_to_f32(vi_f32_to_bf16((float)x));
    }
}

/* The next 16-bit float after h upwards (up = 1) or downwards (up = 0): sign and
 * magnitude mapped to one ordered integer (both zeros are 0). */
static uint16_t step16(uint16_t h, int up)
{
    int32_t k = (h & 0x8000u) ? -(int32_t)(h & 0x7fffu) : (int32_t)h;
    k += up ? 1 : -1;
    return k < 0 ? (uint16_t)(0x8000u | (uint32_t)-k) : (uint16_t)k;
}

/* The value of the dtype next to v (a value of the dtype), upwards or downwards. */
static double dtype_step(int dtype, double v, int up)
{
    switch (dtype) {
    case VI_F64: return nextafter(v, up ? INFINITY : -INFINITY);
    case VI_F32: return nextafterf((float)v, up ? INFINITY : -INFINITY);
    case VI_F16: return vi_f16_to_f32(step16(vi_f32_to_f16((float)v), up));
    default: return vi_bf16_to_f32(step16(vi_f32_to_bf16((float)v), up));
    }
}

/* U(low, high) in [low, high) exactly: low + (high - low) u is computed as in
 * stream version 1 (so the values inside the interval are unchanged), then
 * clamped to the dtype's smallest value >= low and largest value < high. Rounding
 * the product, the sum, or the float32 result to float16/bfloat16 can land on
 * high itself (bfloat16 U(0, 1): 2e-3 of the values) or just below low; the clamp
 * moves exactly those values, with min and max, which are exact. */
static vi_status prepare_uniform(const vi_params *prm, int dtype, vi_plan *plan)
{
    double low = prm->p0, high = prm->p1;
    if (!isfinite(low) || !isfinite(high) || low > high || !isfinite(high - low))
        return VI_EINVAL_PARAM;
    if (low == high) { /* the point mass, as torch's uniform_(a, a) */
        set_constant(plan, low);
        return VI_OK;
    }
    double first = dtype_near(dtype, low), last = dtype_near(dtype, high);
    while (first < low)
        first = dtype_step(dtype, first, 1);
    while (last >= high)
        last = dtype_step(dtype, last, 0);
    if (first > last)
        return VI_EINVAL_PARAM;
    /* +0, never -0: the clamps then leave a zero sample's sign as it was */
    first += 0.0;
    last += 0.0;
    plan->lo_d = low; plan->scale_d = high - low;
    plan->lo_f = (float)low; plan->scale_f = (float)(high - low);
    plan->clamp_lo_d = first; plan->clamp_hi_d = last;
    plan->clamp_lo_f = (float)first; plan->clamp_hi_f = (float)last;
    return VI_OK;
}

static vi_status prepare_trunc(const vi_params *prm, vi_plan *plan)
{
    double mean = prm->p0, std = prm->p1, a = prm->p2, b = prm->p3;
    if (a != a || b != b || a > b || isinf(mean))
        return VI_EINVAL_PARAM;
    if (std == 0.0 || a == b) {
        set_constant(plan, std == 0.0 ? fmin(fmax(mean, a), b) : a);
        return VI_OK;
    }
    double alpha = (a - mean) / std, beta = (b - mean) / std;
    double width = vi_normal_interval_mass(alpha, beta);
    if (!(width >= VI_F64_MIN_MASS))
        return VI_ETAIL;
    double pa = vi_normal_cdf(alpha), qb = vi_normal_cdf(-beta);
    plan->pa_d = pa; plan->qb_d = qb; plan->width_d = width;
    plan->lo_d = mean; plan->scale_d = std;
    plan->clamp_lo_d = a; plan->clamp_hi_d = b;
    plan->pa_f = (float)pa; plan->qb_f = (float)qb; plan->width_f = (float)width;
    plan->lo_f = (float)mean; plan->scale_f = (float)std;
    plan->clamp_lo_f = (float)a; plan->clamp_hi_f = (float)b;
    plan->compute64 = width < VI_F32_MIN_MASS
                   || (pa > 0 && pa < VI_F32_MIN_MASS) || (qb > 0 && qb < VI_F32_MIN_MASS)
                   || (float)std == 0.0f || isinf((float)std);
    return VI_OK;
}

vi_status vi_plan_prepare(const vi_params *prm, int dtype, vi_plan *plan)
{
    *plan = (vi_plan){0};
    plan->dist = prm->dist;
    switch (prm->dist) {
    case VI_UNIFORM:
        return prepare_uniform(prm, dtype, plan);
    case VI_NORMAL: {
        double mean = prm->p0, std = prm->p1;
        if (!isfinite(mean) || !(std >= 0) || isinf(std))
            return VI_EINVAL_PARAM;
        plan->lo_d = mean; plan->scale_d = std;
        plan->lo_f = (float)mean; plan->scale_f = (float)std;
        return VI_OK;
    }
    case VI_TRUNC_NORMAL:
        if (!(prm->p1 >= 0) || isinf(prm->p1))
            return VI_EINVAL_PARAM;
        return prepare_trunc(prm, plan);
    default:
        return VI_EINVAL_DIST;
    }
}
