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
    vi_plan plan;
    vi_plan_prepare(prm, &plan);
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
        double ed = vi_element_f64(&plan, 42, 7, i);
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

int main(void)
{
    int n = (int)(sizeof PARAMS / sizeof PARAMS[0]);
    max_abs_z();
    for (int d = 0; d < n; d++) {
        whole_tensor(&PARAMS[d], d);
        strided_block(&PARAMS[d], d);
    }
    printf("test_samplers: %d passed, %d failed\n", failures ? 0 : 2 * n, failures ? 1 : 0);
    return failures != 0;
}
