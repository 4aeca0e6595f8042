/*
 * The fill walker against the one-element reference of dist/sample.h: every
 * distribution and dtype, odd offsets, strided blocks of a larger tensor.
 * Buffers start filled with a marker so an element never written shows up.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "varinit.h"
#include "dist/plan.h"
#include "dist/sample.h"
#include "dist/convert.h"

#define N 1237
static int failures;

static void check(int cond, const char *what, int dist, uint64_t i)
{
    if (!cond && failures++ < 10)
        printf("FAIL %s: dist %d element %llu\n", what, dist, (unsigned long long)i);
}

static const vi_params PARAMS[] = {
    {VI_UNIFORM, -0.5, 2.0, 0, 0},
    {VI_NORMAL, 0.25, 1.5, 0, 0},
    {VI_TRUNC_NORMAL, 0.0, 1.0, -2.0, 2.0},
    {VI_TRUNC_NORMAL, 0.0, 1.0, 4.0, 5.0},
    {VI_TRUNC_NORMAL, 0.0, 1.0, -INFINITY, -6.0},
    {VI_TRUNC_NORMAL, 1.0, 0.02, 0.96, 1.04},
};

static void whole_tensor(const vi_params *prm, int d)
{
    float f[N];
    double x[N];
    int64_t shape[1] = {N}, s4[1] = {4}, s8[1] = {8};
    vi_plan plan, plan_d;
    check(vi_plan_prepare(prm, VI_F32, &plan) == VI_OK, "plan f32", d, 0);
    check(vi_plan_prepare(prm, VI_F64, &plan_d) == VI_OK, "plan f64", d, 0);
    memset(f, 0xff, sizeof f);
    memset(x, 0xff, sizeof x);
    vi_block bf = {f, VI_F32, 1, shape, s4, NULL, NULL};
    vi_block bd = {x, VI_F64, 1, shape, s8, NULL, NULL};
    check(vi_fill(&bf, prm, 42, 7) == VI_OK, "fill f32", d, 0);
    check(vi_fill(&bd, prm, 42, 7) == VI_OK, "fill f64", d, 0);
    for (uint64_t i = 0; i < N; i++) {
        float ef = plan.compute64 ? (float)vi_element_f64(&plan, 42, 7, i)
                                  : vi_element_f32(&plan, 42, 7, i);
        check(memcmp(&f[i], &ef, 4) == 0, "f32 element", d, i);
        double ed = vi_element_f64(&plan_d, 42, 7, i);
        check(memcmp(&x[i], &ed, 8) == 0, "f64 element", d, i);
        if (prm->dist == VI_TRUNC_NORMAL) {
            check(f[i] >= (float)prm->p2 && f[i] <= (float)prm->p3, "f32 in bounds", d, i);
            check(x[i] >= prm->p2 && x[i] <= prm->p3, "f64 in bounds", d, i);
        }
    }
}

/* A 7 x 5 block at (3, 11) of a 20 x 37 tensor, written with a column stride. */
static void strided_block(const vi_params *prm, int d)
{
    enum { GR = 20, GC = 37, R = 7, C = 5, R0 = 3, C0 = 11 };
    float whole[GR * GC], block[C][R];
    int64_t gshape[2] = {GR, GC}, gstrides[2] = {GC * 4, 4};
    int64_t bshape[2] = {R, C}, bstrides[2] = {4, R * 4}, start[2] = {R0, C0};
    vi_block w = {whole, VI_F32, 2, gshape, gstrides, NULL, NULL};
    vi_block b = {block, VI_F32, 2, bshape, bstrides, gshape, start};
    memset(block, 0xff, sizeof block);
    check(vi_fill(&w, prm, 9, 3) == VI_OK, "whole", d, 0);
    check(vi_fill(&b, prm, 9, 3) == VI_OK, "block", d, 0);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            check(memcmp(&block[c][r], &whole[(R0 + r) * GC + C0 + c], 4) == 0, "block value",
                  d, (uint64_t)(r * C + c));
}

/* The documented largest |z| is what the smallest u1 (word 0) actually gives. */
static void max_abs_z(void)
{
    check(vi_bm_radius_f32(0u) == (float)vi_normal_max_abs_z(VI_F32), "max |z| f32", VI_NORMAL, 0);
    check(vi_bm_radius_f64(0u) == vi_normal_max_abs_z(VI_F64), "max |z| f64", VI_NORMAL, 0);
    check((double)vi_bm_radius_f32(0u) == vi_normal_max_abs_z(VI_F32), "max |z| f32 exact", VI_NORMAL, 0);
}

/* The 16-bit decoders invert the encoders on every value but NaN. */
static void half_round_trip(void)
{
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) != 0x7c00u || (h & 0x3ffu) == 0)
            check(vi_f32_to_f16(vi_f16_to_f32((uint16_t)h)) == h, "float16 round trip", VI_UNIFORM, h);
        if ((h & 0x7f80u) != 0x7f80u || (h & 0x7fu) == 0)
            check(vi_f32_to_bf16(vi_bf16_to_f32((uint16_t)h)) == h, "bfloat16 round trip", VI_UNIFORM, h);
    }
    check(vi_f16_to_f32(0x0001u) == 0x1p-24f && vi_f16_to_f32(0x7bffu) == 65504.0f
          && vi_f16_to_f32(0x3c00u) == 1.0f && vi_bf16_to_f32(0x3f80u) == 1.0f,
          "float16/bfloat16 values", VI_UNIFORM, 0);
}

static double clamp_of(double low, double high, int dtype, int upper)
{
    vi_params prm = {VI_UNIFORM, low, high, 0, 0};
    vi_plan p;
    if (vi_plan_prepare(&prm, dtype, &p) != VI_OK)
        return NAN;
    if (dtype == VI_F64)
        return upper ? p.clamp_hi_d : p.clamp_lo_d;
    return upper ? p.clamp_hi_f : p.clamp_lo_f;
}

static float half_value(int dtype, const uint16_t *h)
{
    return dtype == VI_F16 ? vi_f16_to_f32(*h) : vi_bf16_to_f32(*h);
}

/* U(low, high) stays in [low, high) in every dtype. Before stream version 2,
 * rounding left it: with key 42, stream 7, these 2^16 values of U(0, 1) held 1.0
 * 140 times in bfloat16 and 14 in float16, U(0.3, 0.31) reached 0.31 2837 and 420
 * times, U(1.0001, 1.01) fell to 1.0 2526 times in float16; float32
 * U(1e6 + 0.01, 1e6 + 1) left the interval for 5.3% of its values, float64
 * U(1e15, 1e15 + 0.25) for 25%. */
static void uniform_in_interval(void)
{
    enum { M = 1 << 16 };
    static uint16_t h[M];
    static float f[M];
    static double x[M];
    int64_t shape[1] = {M}, s2[1] = {2}, s4[1] = {4}, s8[1] = {8};
    static const double HALF_CASES[][2] = {{0.0, 1.0}, {-1.0, 1.0}, {1.0001, 1.01}, {0.3, 0.31}};
    for (int dt = VI_F16; dt <= VI_BF16; dt++)
        for (size_t c = 0; c < sizeof HALF_CASES / sizeof HALF_CASES[0]; c++) {
            vi_params prm = {VI_UNIFORM, HALF_CASES[c][0], HALF_CASES[c][1], 0, 0};
            vi_block b = {h, dt, 1, shape, s2, NULL, NULL};
            check(vi_fill(&b, &prm, 42, 7) == VI_OK, "fill 16-bit", VI_UNIFORM, c);
            for (uint64_t i = 0; i < M; i++) {
                float v = half_value(dt, &h[i]);
                check(v >= prm.p0 && v < prm.p1, "16-bit uniform in [low, high)", VI_UNIFORM, i);
            }
        }
    vi_params p32 = {VI_UNIFORM, 1e6 + 0.01, 1e6 + 1.0, 0, 0};
    vi_block b32 = {f, VI_F32, 1, shape, s4, NULL, NULL};
    check(vi_fill(&b32, &p32, 42, 7) == VI_OK, "fill f32", VI_UNIFORM, 0);
    for (uint64_t i = 0; i < M; i++)
        check(f[i] >= p32.p0 && f[i] < p32.p1, "f32 uniform in [low, high)", VI_UNIFORM, i);
    vi_params p64 = {VI_UNIFORM, 1e15, 1e15 + 0.25, 0, 0};
    vi_block b64 = {x, VI_F64, 1, shape, s8, NULL, NULL};
    check(vi_fill(&b64, &p64, 42, 7) == VI_OK, "fill f64", VI_UNIFORM, 0);
    for (uint64_t i = 0; i < M; i++)
        check(x[i] >= p64.p0 && x[i] < p64.p1, "f64 uniform in [low, high)", VI_UNIFORM, i);
}

/* The plan's clamps are the dtype's first value >= low and last value < high. */
static void uniform_clamps(void)
{
    check(clamp_of(0, 1, VI_F64, 1) == 1 - 0x1p-53 && clamp_of(0, 1, VI_F32, 1) == 1 - 0x1p-24
          && clamp_of(0, 1, VI_F16, 1) == 1 - 0x1p-11 && clamp_of(0, 1, VI_BF16, 1) == 1 - 0x1p-8,
          "largest value below 1", VI_UNIFORM, 0);
    check(clamp_of(0.7, 1, VI_F32, 0) == (double)nextafterf(0.7f, 1.0f) /* 0.7f < 0.7 */
          && clamp_of(0.3, 1, VI_F32, 0) == (double)0.3f                /* 0.3f > 0.3 */
          && clamp_of(1e-30, 1, VI_F16, 0) == 0x1p-24                   /* the smallest subnormal */
          && clamp_of(-1e-30, 1, VI_F16, 0) == 0.0,
          "smallest value at or above low", VI_UNIFORM, 0);
    check(clamp_of(-3, -1e-30, VI_F16, 1) == -0x1p-24 && clamp_of(-3, 0.0, VI_BF16, 1) == -0x1p-133
          && clamp_of(0, 1e6, VI_F16, 1) == 65504.0 && clamp_of(-1e6, 1, VI_F16, 0) == -65504.0,
          "largest value below high: negative, subnormal, beyond the range", VI_UNIFORM, 0);
    /* a zero clamp is +0, whatever the sign of low */
    check(!signbit(clamp_of(-0.0, 1, VI_F32, 0)) && !signbit(clamp_of(-0.0, 1, VI_F64, 0)),
          "+0 clamp", VI_UNIFORM, 0);
    /* no value of the dtype in [low, high): refused; low == high: the constant */
    vi_params none = {VI_UNIFORM, 1.0001, 1.0002, 0, 0}, point = {VI_UNIFORM, 3.0, 3.0, 0, 0};
    vi_plan p;
    check(vi_plan_prepare(&none, VI_F16, &p) == VI_EINVAL_PARAM
          && vi_plan_prepare(&none, VI_BF16, &p) == VI_EINVAL_PARAM
          && vi_plan_prepare(&none, VI_F32, &p) == VI_OK && vi_plan_prepare(&none, VI_F64, &p) == VI_OK,
          "empty interval", VI_UNIFORM, 0);
    uint16_t h[3] = {0x1234, 0x1234, 0x1234};
    int64_t shape[1] = {3}, s2[1] = {2};
    vi_block b = {h, VI_F16, 1, shape, s2, NULL, NULL};
    check(vi_fill(&b, &none, 1, 2) == VI_EINVAL_PARAM && h[0] == 0x1234 && h[2] == 0x1234,
          "empty interval: nothing written", VI_UNIFORM, 0);
    check(vi_fill(&b, &point, 1, 2) == VI_OK && h[0] == 0x4200 && h[1] == 0x4200 && h[2] == 0x4200,
          "low == high: the constant", VI_UNIFORM, 0);
}

int main(void)
{
    int n = (int)(sizeof PARAMS / sizeof PARAMS[0]);
    max_abs_z();
    half_round_trip();
    uniform_clamps();
    uniform_in_interval();
    for (int d = 0; d < n; d++) {
        whole_tensor(&PARAMS[d], d);
        strided_block(&PARAMS[d], d);
    }
    printf("test_samplers: %d passed, %d failed\n", failures ? 0 : 2 * n, failures ? 1 : 0);
    return failures != 0;
}
