/* Turning user parameters into the constants the kernels use. */
#include <math.h>
#include "plan.h"

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

vi_status vi_plan_prepare(const vi_params *prm, vi_plan *plan)
{
    *plan = (vi_plan){0};
    plan->dist = prm->dist;
    switch (prm->dist) {
    case VI_UNIFORM: {
        double lo = prm->p0, hi = prm->p1;
        if (!isfinite(lo) || !isfinite(hi) || lo > hi || !isfinite(hi - lo))
            return VI_EINVAL_PARAM;
        plan->lo_d = lo; plan->scale_d = hi - lo;
        plan->lo_f = (float)lo; plan->scale_f = (float)(hi - lo);
        return VI_OK;
    }
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
