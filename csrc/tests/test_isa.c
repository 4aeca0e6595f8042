/*
 * Every kernel table this machine runs against the scalar table, byte for
 * byte: each distribution and dtype, parameter sets that reach every branch of
 * the samplers (the three AS 241 regions, both sides of the truncated normal,
 * the clamps of the truncated normal and of the uniform's [low, high) in each
 * dtype), several keys and streams, and group offsets where the high word of
 * the block counter is non-zero or changes inside a call.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "varinit.h"
#include "dist/plan.h"
#include "dist/sample.h"
#include "simd/kernels.h"

#define MAX_GROUPS 64
static int failures, compared;

static const char *const DTYPE_NAMES[] = {"float32", "float64", "float16", "bfloat16"};
static int plan_dtype; /* the dtype of the plan being compared, for the messages */

static void fail(const char *isa, const char *what, int set, uint64_t g0, size_t k)
{
    if (failures++ < 10)
        printf("FAIL %s %s: parameter set %d (%s plan), group0 %llu, element %zu\n", isa, what,
               set, DTYPE_NAMES[plan_dtype], (unsigned long long)g0, k);
}

static const vi_params PARAMS[] = {
    {VI_UNIFORM, -0.5, 2.0, 0, 0},
    {VI_UNIFORM, 3.0, 3.0, 0, 0},
    /* the clamps to the dtype's [low, high): bfloat16 and float16 round up to 1
     * and to 0.31; bfloat16 and float16 round below 1.0001 (to 1); float32 spaces
     * 1e6 by 1/16, so it rounds below 1e6 + 0.01 and up to 1e6 + 1; float64 spaces
     * 1e15 by 1/8, so it rounds up to 1e15 + 0.25 (high itself) for a quarter of
     * the values */
    {VI_UNIFORM, 0.0, 1.0, 0, 0},
    {VI_UNIFORM, 0.3, 0.31, 0, 0},
    {VI_UNIFORM, 1.0001, 1.01, 0, 0},
    {VI_UNIFORM, 1e6 + 0.01, 1e6 + 1.0, 0, 0},
    {VI_UNIFORM, 1e15, 1e15 + 0.25, 0, 0},
    {VI_NORMAL, 0.25, 1.5, 0, 0},
    {VI_NORMAL, -1e-3, 1e-20, 0, 0},
    {VI_TRUNC_NORMAL, 0.0, 1.0, -2.0, 2.0},  /* central region and the r <= 5 tail */
    {VI_TRUNC_NORMAL, 0.0, 1.0, 4.0, 5.0},   /* sampled from above, tail only */
    {VI_TRUNC_NORMAL, 0.0, 1.0, -INFINITY, -6.0}, /* p < 1.4e-11 for some u: r > 5 */
    {VI_TRUNC_NORMAL, 0.0, 1.0, 6.0, 7.0},   /* r > 5 near 7, from above */
    {VI_TRUNC_NORMAL, 1.0, 0.02, 0.96, 1.04},/* tiny std */
    {VI_TRUNC_NORMAL, 0.5, 2.0, 0.5, INFINITY},
};
#define NSETS ((int)(sizeof PARAMS / sizeof PARAMS[0]))

static const struct { uint64_t key, stream; } KEYS[] = {
    {42, 7}, {0, 0}, {0xFFFFFFFFFFFFFFFFull, 0x123456789ABCDEFull}, {0x9E3779B97F4A7C15ull, 1},
};

static const struct { uint64_t g0; size_t n; } RANGES[] = {
    {0, 50},
    {(1ull << 28) - 3, 6},     /* block 16g crosses 2^32: the high counter word changes */
    {(1ull << 33) + 5, 3},     /* group index above 2^32 */
    {(1ull << 56) - 2, 2},     /* the last groups of the largest allowed tensor */
    {12345, 0},
};

/* Which AS 241 regions the scalar sampler uses for these words (bits 0..2:
 * central, tail r <= 5, tail r > 5), so the test shows it reached them all. */
static unsigned regions_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n)
{
    unsigned seen = 0;
    for (uint64_t b = 16 * g0; b < 16 * (g0 + n); b++) {
        uint32_t w[4];
        vi_philox_block(key, stream, b, w);
        for (int k = 0; k < 4; k++) {
            float u = vi_u01_open_f32(w[k]);
            float lo = p->pa_f + u * p->width_f, hi = p->qb_f + (1.0f - u) * p->width_f;
            float pr = lo <= hi ? lo : hi;
            if (pr - 0.5f >= -0.425f)
                seen |= 1;
            else
                seen |= __builtin_sqrtf(-vi_log_f32(pr)) <= 5.0f ? 2 : 4;
        }
    }
    return seen;
}

/* Which uniform clamps the scalar sampler applied (bit 2d: below the dtype's
 * smallest value >= low, bit 2d + 1: above its largest value < high, for dtype d),
 * so the test shows it reached them all. */
static unsigned clamps_uniform(const vi_plan *p, int dtype, uint64_t key, uint64_t stream,
                               uint64_t g0, size_t n)
{
    unsigned seen = 0;
    for (uint64_t b = 16 * g0; b < 16 * (g0 + n); b++) {
        uint32_t w[4];
        vi_philox_block(key, stream, b, w);
        for (int k = 0; k < 4; k++) {
            int below, above;
            if (dtype == VI_F64) {
                uint64_t v = ((uint64_t)w[(k & 2) + 1] << 32) | w[k & 2]; /* word k / 2 */
                double x = p->lo_d + p->scale_d * vi_u01_f64(v);
                below = x < p->clamp_lo_d;
                above = x > p->clamp_hi_d;
            } else {
                float x = p->lo_f + p->scale_f * vi_u01_f32(w[k]);
                below = x < p->clamp_lo_f;
                above = x > p->clamp_hi_f;
            }
            seen |= (unsigned)below << (2 * dtype) | (unsigned)above << (2 * dtype + 1);
        }
    }
    return seen;
}

static void compare(const char *isa, const vi_kernels *kern, int set, int dtype,
                    unsigned *regions, unsigned *clamps)
{
    static float ref_f[MAX_GROUPS * VI_GROUP_F32], got_f[MAX_GROUPS * VI_GROUP_F32 + 2];
    static double ref_d[MAX_GROUPS * VI_GROUP_F64], got_d[MAX_GROUPS * VI_GROUP_F64 + 2];
    vi_plan p;
    plan_dtype = dtype;
    vi_status st = vi_plan_prepare(&PARAMS[set], dtype, &p);
    if (st == VI_EINVAL_PARAM && PARAMS[set].dist == VI_UNIFORM)
        return; /* no value of this dtype lies in [low, high): test_samplers checks the refusal */
    if (st != VI_OK) {
        fail(isa, "plan", set, 0, 0);
        return;
    }
    for (size_t k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++)
        for (size_t r = 0; r < sizeof RANGES / sizeof RANGES[0]; r++) {
            uint64_t key = KEYS[k].key, stream = KEYS[k].stream, g0 = RANGES[r].g0;
            size_t n = RANGES[r].n, nf = n * VI_GROUP_F32, nd = n * VI_GROUP_F64;
            memset(ref_f, 0xA5, sizeof ref_f);
            memset(got_f, 0x5A, sizeof got_f);
            memset(ref_d, 0xA5, sizeof ref_d);
            memset(got_d, 0x5A, sizeof got_d);
            vi_kernels_scalar.f32[p.dist](&p, key, stream, g0, n, ref_f);
            vi_kernels_scalar.f64[p.dist](&p, key, stream, g0, n, ref_d);
            /* one element past the start: SIMD stores must not assume alignment */
            kern->f32[p.dist](&p, key, stream, g0, n, got_f + 1);
            kern->f64[p.dist](&p, key, stream, g0, n, got_d + 1);
            for (size_t e = 0; e < nf; e++)
                if (memcmp(&ref_f[e], &got_f[e + 1], 4) != 0) {
                    fail(isa, "f32", set, g0, e);
                    break;
                }
            for (size_t e = 0; e < nd; e++)
                if (memcmp(&ref_d[e], &got_d[e + 1], 8) != 0) {
                    fail(isa, "f64", set, g0, e);
                    break;
                }
            /* the marker survives just outside [1, n + 1) */
            uint64_t before, after;
            uint32_t before_f, after_f;
            memcpy(&before_f, &got_f[0], 4);
            memcpy(&after_f, &got_f[nf + 1], 4);
            memcpy(&before, &got_d[0], 8);
            memcpy(&after, &got_d[nd + 1], 8);
            if (before_f != 0x5A5A5A5Au || after_f != 0x5A5A5A5Au
                || before != 0x5A5A5A5A5A5A5A5Aull || after != 0x5A5A5A5A5A5A5A5Aull)
                fail(isa, "wrote outside its groups", set, g0, nf);
            if (PARAMS[set].dist == VI_TRUNC_NORMAL && !p.compute64)
                *regions |= regions_f32(&p, key, stream, g0, n);
            if (p.dist == VI_UNIFORM)
                *clamps |= clamps_uniform(&p, dtype, key, stream, g0, n);
            compared++;
        }
}

int main(void)
{
    static const char *const names[] = {"avx512", "avx2", "neon"};
    if (vi_kernels_for_isa("scalar") != &vi_kernels_scalar || vi_kernels_for_isa("bogus") != NULL
        || vi_active_kernels() == NULL || vi_isa_error() != NULL) {
        printf("FAIL dispatch: scalar table, unknown name or active table\n");
        failures++;
    }
    int tables = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const vi_kernels *kern = vi_kernels_for_isa(names[k]);
        if (!kern) {
            printf("test_isa: %s not available on this machine\n", names[k]);
            continue;
        }
        unsigned regions = 0, clamps = 0;
        tables++;
        /* the plan depends on the dtype (the uniform's clamps); float16 and bfloat16
         * use the float32 kernels, so each dtype's plan runs through both tables */
        for (int set = 0; set < NSETS; set++)
            for (int dtype = VI_F32; dtype <= VI_BF16; dtype++)
                compare(names[k], kern, set, dtype, &regions, &clamps);
        if (regions != 7) {
            printf("FAIL %s: AS 241 regions reached: mask %u, expected 7\n", names[k], regions);
            failures++;
        }
        /* every clamp but float64's lower one, which never acts: low + (high - low) u
         * >= low in float64, the arithmetic of low itself */
        unsigned expected_clamps = 0xFFu & ~(1u << (2 * VI_F64));
        if (clamps != expected_clamps) {
            printf("FAIL %s: uniform clamps reached: mask 0x%x, expected 0x%x\n", names[k], clamps,
                   expected_clamps);
            failures++;
        }
    }
    printf("test_isa: %d tables, %d comparisons, %d failed (active: %s)\n", tables, compared,
           failures, vi_active_kernels() ? vi_active_kernels()->name : "none");
    return failures != 0;
}
