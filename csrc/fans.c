/*
 * Fan-in and fan-out per layer kind, and the per-phase tap scale of strided
 * transposed convolutions. varinit.h states the rules; this file applies them.
 *
 * Every axis of the weight has a role: input, output or receptive field.
 * Then, for every layer kind,
 *   fan_in  = (prod(input axes) / in_groups) * prod(receptive axes) [/ prod(stride)]
 *   fan_out = (prod(output axes) / out_groups / blocks) * prod(receptive axes) [/ prod(stride)]
 * where torch's rule (and linear, conv) makes axis 0 the output and axis 1 the
 * input with out_groups = groups, a transposed conv swaps them with
 * in_groups = groups, and explicit axes (JAX's layout) take no groups. The
 * stride divides the side whose positions it thins out: a strided conv's
 * fan_out (an input position reaches prod(k) / prod(s) output positions per
 * output channel on average) and a strided transposed conv's fan_in (an output
 * position receives prod(k) / prod(s) taps per input channel on average).
 *
 * Counts stay below 2^53, where a double holds every integer: the results are
 * exact, and the one division (a strided layer's average fan) is a single IEEE
 * division of exact operands, so it is correctly rounded: the value Python's
 * int / int gives.
 */
#include <string.h>
#include "varinit.h"

#define VI_EXACT_LIMIT ((int64_t)1 << 53)

enum { ROLE_RECEPTIVE, ROLE_IN, ROLE_OUT };

/* a * b for 0 <= a, b: VI_EOVERFLOW unless the product is below 2^53 */
static vi_status mul_exact(int64_t a, int64_t b, int64_t *out)
{
    if (a != 0 && b > (VI_EXACT_LIMIT - 1) / a)
        return VI_EOVERFLOW;
    *out = a * b;
    return VI_OK;
}

/* The product of the extents of one role: 0 when one of them is 0 (however
 * large the others), else VI_EOVERFLOW from 2^53 on. */
static vi_status role_product(int ndim, const int64_t *shape, const unsigned char *role, int which,
                              int64_t *out)
{
    int64_t p = 1;
    for (int ax = 0; ax < ndim; ax++)
        if (role[ax] == which && shape[ax] == 0) {
            *out = 0;
            return VI_OK;
        }
    for (int ax = 0; ax < ndim; ax++)
        if (role[ax] == which && mul_exact(p, shape[ax], &p) != VI_OK)
            return VI_EOVERFLOW;
    *out = p;
    return VI_OK;
}

/* count / by when `by` divides it (channels split into groups or blocks) */
static vi_status divide_exact(int64_t *count, int64_t by)
{
    if (*count % by != 0)
        return VI_EINVAL_LAYOUT;
    *count /= by;
    return VI_OK;
}

/* axis a of an ndim-d weight, negative counting from the end; -1 if out of range */
static int normalize_axis(int a, int ndim)
{
    if (a < -ndim || a >= ndim)
        return -1;
    return a < 0 ? a + ndim : a;
}

/* Marks the axes of one side; VI_EINVAL_LAYOUT for an axis out of range or
 * already given a role. */
static vi_status mark_axes(int n, const int *axes, int ndim, int which, unsigned char *role)
{
    for (int k = 0; k < n; k++) {
        int a = normalize_axis(axes[k], ndim);
        if (a < 0 || role[a] != ROLE_RECEPTIVE)
            return VI_EINVAL_LAYOUT;
        role[a] = (unsigned char)which;
    }
    return VI_OK;
}

/* The roles from explicit axes. A 2-d weight may name one side only: the
 * other axis is the other side. */
static vi_status roles_from_axes(const vi_fan_spec *spec, int ndim, unsigned char *role)
{
    int n_in = spec->in_axes ? spec->n_in_axes : 0, n_out = spec->out_axes ? spec->n_out_axes : 0;
    if (n_in < 0 || n_out < 0 || n_in > ndim || n_out > ndim)
        return VI_EINVAL_LAYOUT;
    if (spec->in_axes && spec->out_axes) {
        vi_status st = mark_axes(n_in, spec->in_axes, ndim, ROLE_IN, role);
        return st != VI_OK ? st : mark_axes(n_out, spec->out_axes, ndim, ROLE_OUT, role);
    }
    if (ndim != 2 || n_in + n_out != 1)
        return VI_EINVAL_LAYOUT;
    int a = normalize_axis(n_in ? spec->in_axes[0] : spec->out_axes[0], ndim);
    if (a < 0)
        return VI_EINVAL_LAYOUT;
    role[a] = n_in ? ROLE_IN : ROLE_OUT;
    role[1 - a] = n_in ? ROLE_OUT : ROLE_IN;
    return VI_OK;
}

vi_status vi_fans(int ndim, const int64_t *shape, const vi_fan_spec *spec,
                  double *fan_in, double *fan_out)
{
    static const vi_fan_spec torch_rule = {VI_LAYER_DEFAULT, 1, 1, NULL, 0, NULL, 0, NULL};
    unsigned char role[VI_MAX_NDIM];
    vi_status st;
    if (!spec)
        spec = &torch_rule;
    if (ndim < 2 || ndim > VI_MAX_NDIM || !shape)
        return VI_EINVAL_SHAPE;
    for (int ax = 0; ax < ndim; ax++)
        if (shape[ax] < 0)
            return VI_EINVAL_SHAPE;

    int layer = spec->layer;
    int64_t groups = spec->groups ? spec->groups : 1, blocks = spec->blocks ? spec->blocks : 1;
    int conv = layer == VI_LAYER_CONV || layer == VI_LAYER_CONV_TRANSPOSE;
    if (layer < VI_LAYER_DEFAULT || layer > VI_LAYER_CONV_TRANSPOSE || groups < 1 || blocks < 1)
        return VI_EINVAL_LAYOUT;
    if (!conv && (groups != 1 || spec->stride))
        return VI_EINVAL_LAYOUT;
    if (layer == VI_LAYER_CONV_TRANSPOSE && ndim < 3)
        return VI_EINVAL_LAYOUT;
    /* the stride product: a conv divides its fan_out by it, a transposed conv its fan_in */
    int64_t strides = 1;
    for (int k = 0; spec->stride && k < ndim - 2; k++) {
        if (spec->stride[k] < 1)
            return VI_EINVAL_LAYOUT;
        if (mul_exact(strides, spec->stride[k], &strides) != VI_OK)
            return VI_EOVERFLOW;
    }

    memset(role, ROLE_RECEPTIVE, (size_t)ndim);
    int64_t in_groups = 1, out_groups = 1;
    if (spec->in_axes || spec->out_axes) {
        if (conv) /* axes describe a layout; groups and stride belong to convolutions */
            return VI_EINVAL_LAYOUT;
        if ((st = roles_from_axes(spec, ndim, role)) != VI_OK)
            return st;
    } else if (layer == VI_LAYER_CONV_TRANSPOSE) { /* (C_in, C_out/groups, *kernel) */
        role[0] = ROLE_IN;
        role[1] = ROLE_OUT;
        in_groups = groups;
    } else { /* (C_out, C_in/groups, *kernel) */
        role[0] = ROLE_OUT;
        role[1] = ROLE_IN;
        out_groups = groups;
    }

    int64_t n_in, n_out, receptive, in_count, out_count;
    if ((st = role_product(ndim, shape, role, ROLE_IN, &n_in)) != VI_OK
        || (st = role_product(ndim, shape, role, ROLE_OUT, &n_out)) != VI_OK
        || (st = role_product(ndim, shape, role, ROLE_RECEPTIVE, &receptive)) != VI_OK
        || (st = divide_exact(&n_in, in_groups)) != VI_OK
        || (st = divide_exact(&n_out, out_groups)) != VI_OK
        || (st = divide_exact(&n_out, blocks)) != VI_OK
        || (st = mul_exact(n_in, receptive, &in_count)) != VI_OK
        || (st = mul_exact(n_out, receptive, &out_count)) != VI_OK)
        return st;
    *fan_in = (double)in_count / (double)(layer == VI_LAYER_CONV_TRANSPOSE ? strides : 1);
    *fan_out = (double)out_count / (double)(layer == VI_LAYER_CONV ? strides : 1);
    return VI_OK;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Tap j's multiplier along one axis. The phases (d j) mod s repeat with period
 * P = s / gcd(d, s) in j, each phase once per period, so the taps sharing j's
 * phase are those congruent to j mod P: n = ceil((k - j mod P) / P) of them. */
static double tap_factor(int64_t j, int64_t k, int64_t period, double k_over_s)
{
    int64_t n = (k - 1 - j % period) / period + 1;
    return __builtin_sqrt(k_over_s / (double)n);
}

vi_status vi_phase_scale(int kdim, const int64_t *kernel, const int64_t *stride,
                         const int64_t *dilation, double *out)
{
    if (kdim < 0 || kdim > VI_MAX_NDIM || (kdim && !kernel))
        return VI_EINVAL_SHAPE;
    int64_t total = 1;
    int empty = 0;
    for (int ax = 0; ax < kdim; ax++) {
        int64_t k = kernel[ax], s = stride ? stride[ax] : 1, d = dilation ? dilation[ax] : 1;
        if (k < 0)
            return VI_EINVAL_SHAPE;
        if (s < 1 || d < 1)
            return VI_EINVAL_LAYOUT;
        if (k >= VI_EXACT_LIMIT || s >= VI_EXACT_LIMIT) /* k / s must be exact operands */
            return VI_EOVERFLOW;
        empty |= k == 0;
    }
    for (int ax = 0; !empty && ax < kdim; ax++)
        if (mul_exact(total, kernel[ax], &total) != VI_OK
            || (uint64_t)total > (uint64_t)(SIZE_MAX / sizeof(double)))
            return VI_EOVERFLOW;
    if (empty || !out)
        return VI_OK;
    /* Axis by axis, in place from the back (entry i of the previous axes spreads
     * to entries i*k .. i*k+k-1, never below i): out[i*k + j] = out[i] * f(j),
     * so the factors multiply in axis order, starting from 1. */
    size_t n = 1;
    out[0] = 1.0;
    for (int ax = 0; ax < kdim; ax++) {
        int64_t k = kernel[ax], s = stride ? stride[ax] : 1, d = dilation ? dilation[ax] : 1;
        int64_t period = s / gcd64(s, d % s);
        double k_over_s = (double)k / (double)s;
        for (size_t i = n; i-- > 0;) {
            double base = out[i];
            for (int64_t j = k; j-- > 0;)
                out[i * (size_t)k + (size_t)j] = base * tap_factor(j, k, period, k_over_s);
        }
        n *= (size_t)k;
    }
    return VI_OK;
}
