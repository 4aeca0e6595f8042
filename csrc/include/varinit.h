/*
 * varinit: the public C API of the core: fills, fans, threads, instruction sets.
 *
 * Usable from plain C without Python (examples/kaiming_from_c.c). Every
 * random value is a pure function of (key, stream, logical index,
 * distribution parameters, dtype): see the random-number contract in
 * DESIGN.md and the README. Functions return a vi_status; nothing here
 * allocates per element or calls back into Python.
 */
#ifndef VARINIT_H
#define VARINIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever any value produced for a given seed changes. */
#define VI_STREAM_VERSION 2

#define VI_MAX_NDIM 64

typedef enum {
    VI_OK = 0,
    VI_EINVAL_DIST = 1,    /* unknown distribution code */
    VI_EINVAL_DTYPE = 2,   /* unknown dtype code */
    VI_EINVAL_PARAM = 3,   /* NaN/negative std, a > b, infinite uniform bound, a uniform
                              interval that holds no value of the dtype */
    VI_EINVAL_SHAPE = 4,   /* ndim out of range, negative extent, block outside global shape */
    VI_ETAIL = 5,          /* truncation interval has (numerically) zero probability */
    VI_EOVERFLOW = 6,      /* element count or index overflows 64 bits; a fan reaches 2^53 */
    VI_EISA = 7,           /* VARINIT_ISA names no instruction set this machine runs */
    VI_EINVAL_LAYOUT = 8   /* vi_fans / vi_phase_scale: unknown layer, bad groups, blocks,
                              stride, dilation or axes, or channels they do not divide */
} vi_status;

typedef enum { VI_F32 = 0, VI_F64 = 1, VI_F16 = 2, VI_BF16 = 3 } vi_dtype;

typedef enum {
    VI_UNIFORM = 0,      /* p0 = low, p1 = high: values in [low, high) in the target dtype
                            (low + (high - low) u, then clamped to the dtype's values in
                            [low, high), so rounding never reaches high); low == high is the
                            constant low; VI_EINVAL_PARAM when low < high but no value of
                            the dtype lies in [low, high) */
    VI_NORMAL = 1,       /* p0 = mean, p1 = std (Box-Muller) */
    VI_TRUNC_NORMAL = 2  /* p0 = mean, p1 = std, p2 = a, p3 = b: absolute bounds (inverse CDF) */
} vi_dist;

typedef struct {
    int dist;     /* a vi_dist */
    double p0, p1, p2, p3;
} vi_params;

/* A block of a (possibly larger, virtual) row-major tensor.
 * data points at the block's logical element [0, ..., 0]; strides are in
 * bytes and may be negative; global_shape and start may be NULL, meaning the
 * block is the whole tensor. Element (i_0, ..., i_{n-1}) of the block gets
 * the value of global logical index ravel(start + i, global_shape). */
typedef struct {
    void *data;
    int dtype;    /* a vi_dtype */
    int ndim;
    const int64_t *shape;
    const int64_t *strides;
    const int64_t *global_shape;
    const int64_t *start;
} vi_block;

/* Fill a block with the distribution, from stream `stream` of key `key`. */
vi_status vi_fill(const vi_block *block, const vi_params *params,
                  uint64_t key, uint64_t stream);

/* Philox4x32-10 (Salmon et al., SC'11): counter and key in, four words out. */
void vi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The standard normal CDF, computed without libm, so that setup constants are
 * the same bits on every machine. */
double vi_normal_cdf(double x);

/* Mean and variance of N(0, 1) truncated to [alpha, beta]. */
vi_status vi_truncnorm_moments(double alpha, double beta, double *mean, double *var);

/* Largest |z| the normal sampler can return for each floating compute type. */
double vi_normal_max_abs_z(int dtype);

/* A short English text for a status (never NULL). */
const char *vi_status_message(vi_status s);

/* ---- fans: inputs per output unit and outputs per input unit -------------- */
/* The kind of layer a weight belongs to. VI_LAYER_DEFAULT is torch's rule
 * (torch.nn.init._calculate_fan_in_and_fan_out) for the (out, in, *kernel)
 * layout; VI_LAYER_LINEAR is the same for a matrix. */
typedef enum {
    VI_LAYER_DEFAULT = 0,
    VI_LAYER_LINEAR = 1,
    /* weight (C_out, C_in/groups, *kernel), stride s: an output position sums
     * C_in/groups * prod(kernel) inputs (fan_in), an input position reaches
     * C_out/groups * prod(kernel) / prod(s) outputs on average (fan_out: the
     * backward pass's fan, the mirror of the transposed conv's fan_in); torch
     * leaves fan_out g times too large (pytorch issue 23854) and ignores the
     * stride */
    VI_LAYER_CONV = 2,
    /* weight (C_in, C_out/groups, *kernel), stride s: an output position sums
     * C_in/groups * prod(kernel) / prod(s) taps on average (fan_in), an input
     * feeds C_out/groups * prod(kernel) outputs (fan_out); torch swaps the two
     * and ignores the stride */
    VI_LAYER_CONV_TRANSPOSE = 3
} vi_layer;

/* How a weight's axes are used. A zeroed struct (or a NULL spec) is torch's
 * rule: layer VI_LAYER_DEFAULT, groups 1, blocks 1, no stride, no axes (zero
 * groups or blocks are read as 1, so designated initializers can leave them
 * out). */
typedef struct {
    int layer;              /* a vi_layer */
    int64_t groups;         /* convolution groups (conv, conv_transpose); depthwise:
                               groups = channels, weight (C, 1, *kernel) */
    int64_t blocks;         /* a fused matrix of `blocks` equal blocks stacked along the
                               output axis (QKV: 3, LSTM: 4, GRU: 3): each block is its
                               own layer, so the output count is divided by blocks
                               (pytorch issue 166378) */
    const int64_t *stride;  /* ndim - 2 entries >= 1, one per kernel axis (conv and
                               conv_transpose only), or NULL for 1 */
    /* JAX's layout (jax.nn.initializers): when in_axes or out_axes is non-NULL,
     * those n_in_axes / n_out_axes axes (0 allowed) are the inputs and the
     * outputs, and every other axis is the receptive field. Negative axes count
     * from the end. Only with VI_LAYER_DEFAULT or VI_LAYER_LINEAR, groups 1 and
     * no stride. A 2-d weight may give one side only (NULL other side), with one
     * axis: the other axis is then the other side. */
    int n_in_axes;
    const int *in_axes;
    int n_out_axes;
    const int *out_axes;
} vi_fan_spec;

/* fan_in and fan_out of a weight of this shape (ndim >= 2, extents >= 0).
 *
 * Both are exact: every product of extents the rule forms (and the stride
 * product) must stay below 2^53 (VI_EOVERFLOW otherwise), so a double holds it
 * exactly; a product with a zero extent is 0. Both are whole numbers, except a
 * VI_LAYER_CONV_TRANSPOSE fan_in whose stride product does not divide
 * C_in/groups * prod(kernel), and a VI_LAYER_CONV fan_out whose stride product
 * does not divide C_out/groups * prod(kernel): then it is that quotient
 * correctly rounded, and never a whole number (so `fan == floor(fan)` tells the
 * two cases apart).
 *
 * VI_EINVAL_SHAPE: ndim outside [2, VI_MAX_NDIM], a negative extent, shape
 * NULL. VI_EINVAL_LAYOUT: an unknown layer, negative groups or blocks, a
 * stride entry < 1, groups or a stride on a layer they do not apply to, a
 * conv_transpose weight with fewer than 3 axes, axes out of range, repeated or
 * shared by both sides, or a channel count (C_out for conv, C_in and C_out
 * for conv_transpose, the output axes' product with axes) that groups or
 * blocks do not divide. Outputs are written only on VI_OK. */
vi_status vi_fans(int ndim, const int64_t *shape, const vi_fan_spec *spec,
                  double *fan_in, double *fan_out);

/* Per-tap std multipliers that give every output phase of a strided
 * transposed convolution the same variance (no checkerboard: Odena et al.
 * 2016). Along an axis with kernel k, stride s, dilation d, tap j reaches the
 * output positions of phase (d j) mod s, and a position of phase r sums n_r
 * taps; He's rule with fan_in = C_in/g * prod(k) / prod(s) gives phase r the
 * variance n_r s / k, so tap j's multiplier is sqrt((k / s) / n_{r(j)}). The
 * factors of the kdim axes multiply (in axis order) into out, row-major over
 * the kernel: prod(kernel) doubles. All 1 when s divides k and d is 1.
 * The taps reach min(k, s / gcd(d, s)) of the s phases; when that is all of
 * them the mean squared multiplier is 1 (the weight keeps He's variance). A
 * phase no tap reaches (k < s, or gcd(d, s) > 1) stays at zero whatever the
 * weights, and the mean square is then below 1 (reached / s per axis): the
 * multipliers still give the reached phases the target variance, but no scale
 * balances the layer (varinit's phase_balanced=True refuses it).
 *
 * kdim in [0, VI_MAX_NDIM]; kernel extents >= 0 (VI_EINVAL_SHAPE otherwise);
 * stride and dilation: kdim entries >= 1 (VI_EINVAL_LAYOUT otherwise), or NULL
 * for 1; every extent and stride below 2^53 (VI_EOVERFLOW). out may be NULL:
 * the arguments are then only checked. No allocation. */
vi_status vi_phase_scale(int kdim, const int64_t *kernel, const int64_t *stride,
                         const int64_t *dilation, double *out);

/* ---- threads --------------------------------------------------------------- */
#define VI_MAX_THREADS 1024

/* The number of threads a large fill uses, the caller's included. Default:
 * the cores this process may run on, or the environment variable
 * VARINIT_NUM_THREADS read at first use. Values never depend on it. */
int vi_get_num_threads(void);

/* Set it (from any thread); n is clamped to [1, VI_MAX_THREADS]. It applies
 * from the next fill on, which also stops the workers beyond the new count. */
void vi_set_num_threads(int n);

/* The text of VARINIT_NUM_THREADS when it was set but rejected (not an integer
 * in [1, VI_MAX_THREADS]; the default was used instead), else NULL. */
const char *vi_num_threads_env_rejected(void);

/* ---- instruction sets ------------------------------------------------------ */
/* The kernel table is chosen once, on first use: the best one this CPU and
 * its OS run, or the one the environment variable VARINIT_ISA names
 * ("scalar", "avx2", "avx512", "neon"). Values never depend on it. */

/* Name of the active table; NULL when VARINIT_ISA names an unknown
 * instruction set or one this machine cannot run (vi_fill then returns
 * VI_EISA, and vi_isa_error says why). */
const char *vi_isa(void);
const char *vi_isa_error(void); /* NULL when the choice succeeded */

/* The names of the tables this machine runs, best first, NULL-terminated. */
const char *const *vi_available_isas(void);

/* What CPU detection found, as (name, present) pairs in a fixed order:
 * "sse2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl",
 * "os_avx", "os_avx512" (the OS saves the registers) on x86-64; "neon" on
 * AArch64. *count receives their number. */
typedef struct {
    const char *name;
    int present;
} vi_cpu_feature;
const vi_cpu_feature *vi_cpu_features(int *count);

#ifdef __cplusplus
}
#endif
#endif /* VARINIT_H */
