/*
 * vi_fans and vi_phase_scale: known answers for every layer kind (torch's
 * rule, linear, conv with groups / depthwise / pointwise, transposed conv with
 * a stride per axis, fused blocks, JAX axes), the exactness promises at 2^53,
 * and every kind of invalid input. The phase scale is also checked against a
 * slow twin that counts the phases one tap at a time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "varinit.h"

static int failures, checked;

static void check(int cond, const char *what, int line)
{
    checked++;
    if (!cond && failures++ < 30)
        printf("FAIL line %d: %s\n", line, what);
}
#define CHECK(cond) check((cond), #cond, __LINE__)

#define P53 ((int64_t)1 << 53)

/* ---- known answers ------------------------------------------------------- */
static const int64_t S2[1] = {2}, S4[1] = {4}, S22[2] = {2, 2}, S31[2] = {3, 1},
                     S222[3] = {2, 2, 2}, S311[3] = {3, 1, 1}, S1[1] = {1};
static const int A0[1] = {0}, A1[1] = {1}, A2[1] = {2}, A3[1] = {3}, AM1[1] = {-1},
                 AM2[1] = {-2}, A01[2] = {0, 1}, A13[2] = {1, 3};

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[5];
    vi_fan_spec spec;
    double fan_in, fan_out;
} known;

#define SPEC(layer, groups, blocks, stride) {(layer), (groups), (blocks), (stride), 0, NULL, 0, NULL}
#define AXES(nin, in, nout, out, blocks) {VI_LAYER_DEFAULT, 1, (blocks), NULL, (nin), (in), (nout), (out)}

static const known KNOWN[] = {
    /* torch's rule: fan_in = shape[1] * receptive, fan_out = shape[0] * receptive */
    {"matrix", 2, {3, 5}, SPEC(VI_LAYER_DEFAULT, 1, 1, NULL), 5, 3},
    {"conv2d weight by torch's rule", 4, {64, 3, 7, 7}, SPEC(VI_LAYER_DEFAULT, 1, 1, NULL), 147, 3136},
    {"empty receptive field", 3, {2, 3, 0}, SPEC(VI_LAYER_DEFAULT, 1, 1, NULL), 0, 0},
    {"zero outputs", 2, {0, 5}, SPEC(VI_LAYER_DEFAULT, 1, 1, NULL), 5, 0},
    {"zeroed spec reads as groups 1, blocks 1", 2, {6, 4}, SPEC(VI_LAYER_DEFAULT, 0, 0, NULL), 4, 6},
    {"linear", 2, {128, 64}, SPEC(VI_LAYER_LINEAR, 1, 1, NULL), 64, 128},
    {"QKV: 3 blocks", 2, {3 * 768, 768}, SPEC(VI_LAYER_LINEAR, 1, 3, NULL), 768, 768},
    {"LSTM: 4 blocks", 2, {4 * 256, 64}, SPEC(VI_LAYER_DEFAULT, 1, 4, NULL), 64, 256},
    {"GRU: 3 blocks", 2, {3 * 100, 100}, SPEC(VI_LAYER_DEFAULT, 1, 3, NULL), 100, 100},
    /* conv: (C_out, C_in/g, *k); fan_out divided by prod(stride) */
    {"conv1d", 3, {16, 8, 5}, SPEC(VI_LAYER_CONV, 1, 1, NULL), 40, 80},
    {"conv2d", 4, {64, 3, 7, 7}, SPEC(VI_LAYER_CONV, 1, 1, NULL), 147, 3136},
    {"conv3d", 5, {32, 16, 3, 3, 3}, SPEC(VI_LAYER_CONV, 1, 1, NULL), 432, 864},
    {"conv groups 4", 4, {128, 32, 3, 3}, SPEC(VI_LAYER_CONV, 4, 1, NULL), 288, 288},
    {"conv groups 4, stride 2", 4, {128, 32, 3, 3}, SPEC(VI_LAYER_CONV, 4, 1, S22), 288, 72},
    {"conv2d stride (3, 1)", 4, {64, 3, 3, 3}, SPEC(VI_LAYER_CONV, 1, 1, S31), 27, 192},
    {"conv1d stride 2", 3, {16, 8, 3}, SPEC(VI_LAYER_CONV, 1, 1, S2), 24, 24},
    {"conv1d stride 1", 3, {16, 8, 3}, SPEC(VI_LAYER_CONV, 1, 1, S1), 24, 48},
    {"conv3d stride 2", 5, {4, 8, 4, 4, 4}, SPEC(VI_LAYER_CONV, 1, 1, S222), 512, 32},
    {"conv fractional 30/4", 3, {10, 8, 3}, SPEC(VI_LAYER_CONV, 1, 1, S4), 24, 7.5},
    {"conv fractional 63/4", 4, {7, 2, 3, 3}, SPEC(VI_LAYER_CONV, 1, 1, S22), 18, 15.75},
    {"depthwise stride 2", 4, {64, 1, 3, 3}, SPEC(VI_LAYER_CONV, 64, 1, S22), 9, 2.25},
    {"depthwise", 4, {64, 1, 3, 3}, SPEC(VI_LAYER_CONV, 64, 1, NULL), 9, 9},
    {"depthwise 1d, multiplier 2", 3, {64, 1, 5}, SPEC(VI_LAYER_CONV, 32, 1, NULL), 5, 10},
    {"pointwise", 4, {256, 128, 1, 1}, SPEC(VI_LAYER_CONV, 1, 1, NULL), 128, 256},
    {"conv without kernel axes", 2, {8, 4}, SPEC(VI_LAYER_CONV, 2, 1, NULL), 4, 4},
    {"conv groups and blocks", 3, {24, 2, 3}, SPEC(VI_LAYER_CONV, 2, 3, NULL), 6, 12},
    /* conv_transpose: (C_in, C_out/g, *k); fan_in divided by prod(stride) */
    {"conv_transpose2d stride 2", 4, {16, 8, 3, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S22), 36, 72},
    {"conv_transpose2d stride (3, 1)", 4, {16, 8, 3, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S31), 48, 72},
    {"conv_transpose1d stride 2", 3, {16, 8, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S2), 24, 24},
    {"conv_transpose1d no stride", 3, {16, 8, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, NULL), 48, 24},
    {"conv_transpose1d stride 1", 3, {16, 8, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S1), 48, 24},
    {"conv_transpose3d stride 2", 5, {8, 4, 4, 4, 4}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S222), 64, 256},
    {"conv_transpose groups 2", 4, {16, 4, 3, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 2, 1, S22), 18, 36},
    {"conv_transpose blocks 4", 3, {4, 8, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 4, NULL), 12, 6},
    {"conv_transpose fractional 30/4", 3, {10, 8, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S4), 7.5, 24},
    {"conv_transpose fractional 63/4", 4, {7, 2, 3, 3}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S22), 15.75, 18},
    {"conv_transpose fractional 1/3", 5, {1, 1, 1, 1, 1}, SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S311),
     1.0 / 3.0, 1},
    /* JAX's axes: the other axes are the receptive field */
    {"(in, out) matrix", 2, {128, 64}, AXES(1, A0, 1, A1, 1), 128, 64},
    {"(in, out) negative axes", 2, {128, 64}, AXES(1, AM2, 1, AM1, 1), 128, 64},
    {"HWIO kernel", 4, {3, 3, 16, 32}, AXES(1, A2, 1, A3, 1), 144, 288},
    {"several input axes", 4, {4, 5, 6, 7}, AXES(2, A01, 1, A3, 1), 20 * 6, 7 * 6},
    {"several output axes", 4, {2, 3, 4, 5}, AXES(1, A0, 2, A13, 1), 8, 60},
    {"in axis only, 2-d", 2, {10, 20}, AXES(1, A1, 0, NULL, 1), 20, 10},
    {"out axis only, 2-d", 2, {10, 20}, AXES(0, NULL, 1, A1, 1), 10, 20},
    {"no input axis given as empty", 2, {10, 20}, AXES(0, A0, 1, A1, 1), 10, 200},
    {"(in, out) QKV blocks 3", 2, {64, 192}, AXES(1, A0, 1, A1, 3), 64, 64},
    {"axes with linear", 2, {128, 64}, {VI_LAYER_LINEAR, 1, 1, NULL, 1, A0, 1, A1}, 128, 64},
};

static void test_known(void)
{
    for (size_t k = 0; k < sizeof KNOWN / sizeof KNOWN[0]; k++) {
        const known *c = &KNOWN[k];
        double fi = -1, fo = -1;
        vi_status st = vi_fans(c->ndim, c->shape, &c->spec, &fi, &fo);
        checked++;
        if (st != VI_OK || fi != c->fan_in || fo != c->fan_out) {
            if (failures++ < 30)
                printf("FAIL %s: status %d, got (%.17g, %.17g), want (%.17g, %.17g)\n", c->name, st,
                       fi, fo, c->fan_in, c->fan_out);
        }
    }
    /* a NULL spec is torch's rule */
    int64_t shape[4] = {64, 3, 7, 7};
    double fi, fo;
    CHECK(vi_fans(4, shape, NULL, &fi, &fo) == VI_OK && fi == 147 && fo == 3136);
    /* fractional fan_in is never a whole number: floor tells the cases apart */
    vi_fan_spec ct = SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S4);
    int64_t odd[3] = {10, 8, 3};
    CHECK(vi_fans(3, odd, &ct, &fi, &fo) == VI_OK && fi != floor(fi) && fo == floor(fo));
}

/* ---- invalid input ------------------------------------------------------- */
static vi_status fans_of(int ndim, const int64_t *shape, vi_fan_spec spec)
{
    double fi = -7, fo = -7;
    vi_status st = vi_fans(ndim, shape, &spec, &fi, &fo);
    if (st != VI_OK)
        check(fi == -7 && fo == -7, "outputs untouched on error", __LINE__);
    return st;
}

static void test_invalid(void)
{
    int64_t s2[2] = {8, 4}, s3[3] = {8, 4, 3}, s4[4] = {8, 4, 3, 3}, big[VI_MAX_NDIM + 1];
    for (int k = 0; k <= VI_MAX_NDIM; k++)
        big[k] = 1;
    vi_fan_spec torch = SPEC(VI_LAYER_DEFAULT, 1, 1, NULL);
    /* shapes */
    CHECK(fans_of(0, s2, torch) == VI_EINVAL_SHAPE);
    CHECK(fans_of(1, s2, torch) == VI_EINVAL_SHAPE);
    CHECK(fans_of(-3, s2, torch) == VI_EINVAL_SHAPE);
    CHECK(fans_of(VI_MAX_NDIM + 1, big, torch) == VI_EINVAL_SHAPE);
    CHECK(fans_of(VI_MAX_NDIM, big, torch) == VI_OK);
    CHECK(fans_of(2, NULL, torch) == VI_EINVAL_SHAPE);
    int64_t negative[3] = {8, -4, 3};
    CHECK(fans_of(3, negative, torch) == VI_EINVAL_SHAPE);
    /* layer, groups, blocks, stride */
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(4, 1, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(-1, 1, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV, -2, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(VI_LAYER_DEFAULT, 1, -1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(VI_LAYER_LINEAR, 2, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(VI_LAYER_DEFAULT, 2, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(3, s3, (vi_fan_spec)SPEC(VI_LAYER_DEFAULT, 1, 1, S2)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(3, s3, (vi_fan_spec)SPEC(VI_LAYER_LINEAR, 1, 1, S1)) == VI_EINVAL_LAYOUT);
    int64_t zero_stride[2] = {2, 0}, negative_stride[1] = {-2};
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV, 1, 1, zero_stride)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(3, s3, (vi_fan_spec)SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, negative_stride))
          == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, NULL)) == VI_EINVAL_LAYOUT);
    /* channels the groups or blocks do not divide */
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV, 3, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV, 4, 4, NULL)) == VI_EINVAL_LAYOUT); /* 8 / 16 */
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV, 4, 2, NULL)) == VI_OK);
    CHECK(fans_of(2, s2, (vi_fan_spec)SPEC(VI_LAYER_DEFAULT, 1, 3, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV_TRANSPOSE, 3, 1, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(4, s4, (vi_fan_spec)SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 3, NULL)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(1, A0, 1, A1, 3)) == VI_EINVAL_LAYOUT);
    /* axes */
    vi_fan_spec conv_axes = {VI_LAYER_CONV, 1, 1, NULL, 1, A0, 1, A1};
    CHECK(fans_of(2, s2, conv_axes) == VI_EINVAL_LAYOUT);
    vi_fan_spec stride_axes = {VI_LAYER_DEFAULT, 1, 1, S2, 1, A0, 1, A1};
    CHECK(fans_of(3, s3, stride_axes) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(1, A2, 1, A1, 1)) == VI_EINVAL_LAYOUT);   /* out of range */
    static const int AM3[1] = {-3}, A00[2] = {0, 0}, A10[2] = {1, 0};
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(1, AM3, 1, A1, 1)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(3, s3, (vi_fan_spec)AXES(2, A00, 1, A2, 1)) == VI_EINVAL_LAYOUT);  /* twice */
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(1, A1, 1, AM1, 1)) == VI_EINVAL_LAYOUT); /* shared */
    CHECK(fans_of(3, s3, (vi_fan_spec)AXES(1, A0, 0, NULL, 1)) == VI_EINVAL_LAYOUT); /* one side, 3-d */
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(2, A10, 0, NULL, 1)) == VI_EINVAL_LAYOUT); /* one side, 2 axes */
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(0, A0, 0, NULL, 1)) == VI_EINVAL_LAYOUT); /* one side, none */
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(-1, A0, 1, A1, 1)) == VI_EINVAL_LAYOUT);
    CHECK(fans_of(2, s2, (vi_fan_spec)AXES(3, A01, 1, A1, 1)) == VI_EINVAL_LAYOUT); /* more than ndim */
}

/* ---- exactness and overflow ---------------------------------------------- */
static void test_overflow(void)
{
    double fi, fo;
    vi_fan_spec torch = SPEC(VI_LAYER_DEFAULT, 1, 1, NULL);
    int64_t at_limit[3] = {1, (int64_t)1 << 26, (int64_t)1 << 27};  /* fan_in = 2^53 */
    CHECK(vi_fans(3, at_limit, &torch, &fi, &fo) == VI_EOVERFLOW);
    int64_t below[3] = {1, (int64_t)1 << 26, ((int64_t)1 << 27) - 1};
    CHECK(vi_fans(3, below, &torch, &fi, &fo) == VI_OK && fi == (double)(P53 - ((int64_t)1 << 26))
          && fo == (double)(((int64_t)1 << 27) - 1));
    int64_t largest[2] = {1, P53 - 1};
    CHECK(vi_fans(2, largest, &torch, &fi, &fo) == VI_OK && fi == (double)(P53 - 1) && fo == 1);
    int64_t extent_at_limit[2] = {1, P53};
    CHECK(vi_fans(2, extent_at_limit, &torch, &fi, &fo) == VI_EOVERFLOW);
    int64_t huge[2] = {INT64_MAX, INT64_MAX};
    CHECK(vi_fans(2, huge, &torch, &fi, &fo) == VI_EOVERFLOW);
    int64_t huge_receptive[3] = {0, 5, INT64_MAX}; /* fan_in = 5 * (2^63 - 1) */
    CHECK(vi_fans(3, huge_receptive, &torch, &fi, &fo) == VI_EOVERFLOW);
    /* a zero extent makes its product 0, however large the others */
    int64_t zero_and_huge[4] = {0, 3, 0, INT64_MAX};
    CHECK(vi_fans(4, zero_and_huge, &torch, &fi, &fo) == VI_OK && fi == 0 && fo == 0);
    /* the stride product is a count too, for both layers */
    int64_t s4[4] = {8, 4, 3, 3}, wide[2] = {(int64_t)1 << 30, (int64_t)1 << 30};
    int64_t max_stride[2] = {INT64_MAX, INT64_MAX}, below_limit[2] = {(int64_t)1 << 26, ((int64_t)1 << 27) - 1};
    vi_fan_spec ct = SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, wide);
    CHECK(vi_fans(4, s4, &ct, &fi, &fo) == VI_EOVERFLOW);
    vi_fan_spec conv = SPEC(VI_LAYER_CONV, 1, 1, max_stride);
    CHECK(vi_fans(4, s4, &conv, &fi, &fo) == VI_EOVERFLOW);
    vi_fan_spec conv_wide = SPEC(VI_LAYER_CONV, 1, 1, wide);
    CHECK(vi_fans(4, s4, &conv_wide, &fi, &fo) == VI_EOVERFLOW);
    vi_fan_spec conv_below = SPEC(VI_LAYER_CONV, 1, 1, below_limit);
    CHECK(vi_fans(4, s4, &conv_below, &fi, &fo) == VI_OK && fi == 36
          && fo == 72.0 / (double)(P53 - ((int64_t)1 << 26)));
    /* the largest fractional fans: (2^53 - 1) / 2, exact in a double */
    int64_t odd_max[3] = {1, 1, P53 - 1};
    vi_fan_spec ct2 = SPEC(VI_LAYER_CONV_TRANSPOSE, 1, 1, S2), conv2 = SPEC(VI_LAYER_CONV, 1, 1, S2);
    CHECK(vi_fans(3, odd_max, &ct2, &fi, &fo) == VI_OK && fi == 4503599627370495.5);
    CHECK(vi_fans(3, odd_max, &conv2, &fi, &fo) == VI_OK && fo == 4503599627370495.5
          && fi == (double)(P53 - 1));
}

/* The documented promise: below 2^53, a fractional quotient n / t never
 * rounds to a whole number, and a whole one is exact. */
static void test_fractional_is_never_whole(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int bad = 0;
    for (int k = 0; k < 200000; k++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17; /* xorshift64 */
        int64_t n = (int64_t)(x >> 11);          /* up to 2^53 - 1 */
        int64_t t = (int64_t)((x >> 3) % 1000003) + 2;
        if (k % 3 == 0)
            t = (int64_t)(x % ((uint64_t)1 << (k % 53))) + 2;
        double q = (double)n / (double)t;
        bad += n % t ? q == floor(q) : q != (double)(n / t);
    }
    CHECK(bad == 0);
}

/* ---- phase scale ----------------------------------------------------------- */
/* The slow twin: count the phase of every tap one by one. */
static double twin_factor(int64_t k, int64_t s, int64_t d, int64_t j)
{
    int64_t phase = (d * j) % s, count = 0;
    for (int64_t t = 0; t < k; t++)
        count += (d * t) % s == phase;
    return sqrt(((double)k / (double)s) / (double)count);
}

static void test_phase_scale(void)
{
    double out[64];
    /* taps 0 and 2 -> phase 0 (2 taps), tap 1 -> phase 1 (1 tap); k / s = 1.5 */
    int64_t k3[1] = {3}, s2[1] = {2}, d2[1] = {2}, k53[2] = {5, 3}, s22[2] = {2, 2};
    CHECK(vi_phase_scale(1, k3, s2, NULL, out) == VI_OK && out[0] == sqrt(0.75)
          && out[1] == sqrt(1.5) && out[2] == sqrt(0.75));
    /* dilation 2: every tap on phase 0 */
    CHECK(vi_phase_scale(1, k3, s2, d2, out) == VI_OK && out[0] == sqrt(0.5) && out[1] == sqrt(0.5)
          && out[2] == sqrt(0.5));
    /* s divides k: all 1 */
    int64_t k46[2] = {4, 6}, s23[2] = {2, 3};
    int ones = vi_phase_scale(2, k46, s23, NULL, out) == VI_OK;
    for (int e = 0; e < 24; e++)
        ones &= out[e] == 1.0;
    CHECK(ones);
    /* NULL stride and dilation are 1: all 1 */
    int64_t k5[1] = {5};
    CHECK(vi_phase_scale(1, k5, NULL, NULL, out) == VI_OK && out[0] == 1.0 && out[4] == 1.0);
    /* a kernel smaller than the stride */
    int64_t k1[1] = {1};
    CHECK(vi_phase_scale(1, k1, s2, NULL, out) == VI_OK && out[0] == sqrt(0.5));
    /* 2-d: the axes' factors multiply, axis 0 first; for k >= s the mean square is 1 */
    CHECK(vi_phase_scale(2, k53, s22, NULL, out) == VI_OK);
    double a0[5] = {sqrt(2.5 / 3), sqrt(2.5 / 2), sqrt(2.5 / 3), sqrt(2.5 / 2), sqrt(2.5 / 3)};
    double a1[3] = {sqrt(0.75), sqrt(1.5), sqrt(0.75)}, mean_square = 0;
    int same = 1;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) {
            same &= out[3 * i + j] == (1.0 * a0[i]) * a1[j];
            mean_square += out[3 * i + j] * out[3 * i + j] / 15;
        }
    CHECK(same);
    CHECK(fabs(mean_square - 1.0) < 1e-12);
    /* no kernel axes: one multiplier, 1 */
    out[0] = 0;
    CHECK(vi_phase_scale(0, NULL, NULL, NULL, out) == VI_OK && out[0] == 1.0);
    /* an empty kernel writes nothing */
    int64_t k30[2] = {3, 0};
    out[0] = -5;
    CHECK(vi_phase_scale(2, k30, s22, NULL, out) == VI_OK && out[0] == -5);
    /* NULL out: the arguments are checked, nothing is written */
    CHECK(vi_phase_scale(2, k53, s22, NULL, NULL) == VI_OK);

    /* every (k, s, d) up to 12, 7, 7 against the twin, and a 3-d kernel */
    int bad = 0;
    for (int64_t k = 1; k <= 12; k++)
        for (int64_t s = 1; s <= 7; s++)
            for (int64_t d = 1; d <= 7; d++) {
                int64_t kk[1] = {k}, ss[1] = {s}, dd[1] = {d};
                bad += vi_phase_scale(1, kk, ss, dd, out) != VI_OK;
                for (int64_t j = 0; j < k; j++)
                    bad += out[j] != twin_factor(k, s, d, j);
            }
    int64_t k232[3] = {2, 3, 4}, s323[3] = {3, 2, 3}, d123[3] = {1, 2, 3};
    bad += vi_phase_scale(3, k232, s323, d123, out) != VI_OK;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < 4; l++)
                bad += out[12 * i + 4 * j + l] != ((1.0 * twin_factor(2, 3, 1, i)) * twin_factor(3, 2, 2, j))
                                                  * twin_factor(4, 3, 3, l);
    CHECK(bad == 0);

    /* invalid input */
    int64_t neg[1] = {-1}, zero[1] = {0}, limit[1] = {P53}, big[VI_MAX_NDIM + 1];
    for (int k = 0; k <= VI_MAX_NDIM; k++)
        big[k] = 1;
    CHECK(vi_phase_scale(-1, k3, NULL, NULL, out) == VI_EINVAL_SHAPE);
    CHECK(vi_phase_scale(VI_MAX_NDIM + 1, big, NULL, NULL, out) == VI_EINVAL_SHAPE);
    CHECK(vi_phase_scale(VI_MAX_NDIM, big, NULL, NULL, out) == VI_OK && out[0] == 1.0);
    CHECK(vi_phase_scale(1, NULL, NULL, NULL, out) == VI_EINVAL_SHAPE);
    CHECK(vi_phase_scale(1, neg, NULL, NULL, out) == VI_EINVAL_SHAPE);
    CHECK(vi_phase_scale(1, k3, zero, NULL, out) == VI_EINVAL_LAYOUT);
    CHECK(vi_phase_scale(1, k3, s2, neg, out) == VI_EINVAL_LAYOUT);
    CHECK(vi_phase_scale(1, limit, NULL, NULL, NULL) == VI_EOVERFLOW);
    CHECK(vi_phase_scale(1, k3, limit, NULL, out) == VI_EOVERFLOW);
    int64_t too_many[3] = {(int64_t)1 << 20, (int64_t)1 << 20, (int64_t)1 << 20};
    CHECK(vi_phase_scale(3, too_many, NULL, NULL, NULL) == VI_EOVERFLOW);
}

static void test_messages(void)
{
    static const vi_status all[] = {VI_OK, VI_EINVAL_DIST, VI_EINVAL_DTYPE, VI_EINVAL_PARAM,
                                    VI_EINVAL_SHAPE, VI_ETAIL, VI_EOVERFLOW, VI_EISA,
                                    VI_EINVAL_LAYOUT};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        CHECK(strcmp(vi_status_message(all[k]), "unknown status") != 0);
    CHECK(strcmp(vi_status_message((vi_status)99), "unknown status") == 0);
}

int main(void)
{
    test_known();
    test_invalid();
    test_overflow();
    test_fractional_is_never_whole();
    test_phase_scale();
    test_messages();
    printf("test_fans: %d checks, %d failed\n", checked, failures);
    return failures != 0;
}
