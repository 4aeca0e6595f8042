/*
 * The group kernels of dist/sample.h written once over vectors of VI_W lanes of
 * 32 bits; avx512.c, avx2.c and neon.c define the primitives below and include
 * this file, which defines the static kernels uniform_f32 ... trunc_f64 for the
 * including file's table.
 *
 * Lane l of a vector computes Philox block 16g + c*VI_W + l (chunk c of the
 * group), so word w of a vector is VI_W consecutive float32 outputs: a lane
 * never has to be moved to another lane, which on AVX2 and NEON would cost a
 * cross-lane shuffle per word. Every floating operation is the one of sample.h /
 * poly_math.h, in the same order, with no contraction, and every coefficient
 * comes from the same table (dist/poly_coeffs.h); branches of the scalar code
 * become selects, and a branch region is computed only when some lane needs it.
 *
 * Primitives each ISA file provides (macros or VI_FN functions):
 *   VI_W, VI_FN (static inline + target), VI_KERNEL (static + target)
 *   vu/vf/vm: 32-bit integer, float and mask vectors of VI_W lanes
 *   vq/vd/vmd: 64-bit integer, double and mask vectors of VI_W/2 lanes
 *   u_set1 u_lanes u_add u_sub u_xor u_and u_or u_srl u_sll u_mulhilo
 *   f_of_i32 (signed int32 -> float, round to nearest) f_of_bits u_of_f
 *   f_set1 f_add f_sub f_mul f_div f_sqrt f_lt f_le f_gt f_ge f_sel f_min f_max
 *   f_store f_load
 *   m_sign (lanes whose bit 31 is set) m_not m_any m_bits (bit l set when lane l is)
 *   q_join (64-bit words hi:lo of half h of the lanes) q_set1 q_add q_sub q_xor
 *   q_and q_or q_srl q_sll d_of_q53 (exact for values < 2^53) d_of_bits q_of_d
 *   d_set1 d_add d_sub d_mul d_div d_sqrt d_lt d_le d_gt d_ge d_sel d_min d_max
 *   d_store d_load
 *   md_sign md_not md_any md_bits
 * and optionally u_xor3 (a ^ b ^ c), and VI_HAVE_COMPRESS with f_compress_store
 * and u_compress_store (the lanes a mask selects, stored packed; VI_W entries
 * may be written).
 * f_sel(m, a, b) is m ? a : b lane by lane; f_min(a, b) is a < b ? a : b and
 * f_max(a, b) is a > b ? a : b (sample.h's vi_min_f32 / vi_max_f32: x86's
 * minps/maxps, not IEEE minNum), and likewise d_min, d_max.
 */
#include <stddef.h>
#include <stdint.h>
#include "kernels.h"
#include "../dist/poly_math.h"
#include "../rng/philox.h"

#define VI_CHUNKS (16 / VI_W)
#ifndef u_xor3
#define u_xor3(a, b, c) u_xor(u_xor((a), (b)), (c))
#endif

/* ---- Philox4x32-10 on VI_W blocks at once -------------------------------- */
typedef struct {
    vu k0[10], k1[10]; /* the round keys, broadcast */
    vu c2, c3;         /* the stream words of the counter */
} vi_philox_v;

VI_FN void philox_v_init(vi_philox_v *ph, uint64_t key, uint64_t stream)
{
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        ph->k0[r] = u_set1(k0);
        ph->k1[r] = u_set1(k1);
        k0 += VI_PHILOX_W0;
        k1 += VI_PHILOX_W1;
    }
    ph->c2 = u_set1((uint32_t)stream);
    ph->c3 = u_set1((uint32_t)(stream >> 32));
}

/* Words of blocks 16g + chunk*VI_W + l. 16g is a multiple of 16 and
 * chunk*VI_W + l <= 15, so the low counter word never carries. */
VI_FN void philox_v(const vi_philox_v *ph, uint64_t g, int chunk, vu x[4])
{
    uint64_t block = 16u * g + (uint64_t)(chunk * VI_W);
    vu c0 = u_add(u_set1((uint32_t)block), u_lanes());
    vu c1 = u_set1((uint32_t)(block >> 32));
    vu c2 = ph->c2, c3 = ph->c3;
    const vu m0 = u_set1(VI_PHILOX_M0), m1 = u_set1(VI_PHILOX_M1);
    for (int r = 0; r < 10; r++) {
        vu hi0, lo0, hi1, lo1;
        u_mulhilo(c0, m0, &hi0, &lo0);
        u_mulhilo(c2, m1, &hi1, &lo1);
        c0 = u_xor3(hi1, c1, ph->k0[r]);
        c1 = lo1;
        c2 = u_xor3(hi0, c3, ph->k1[r]);
        c3 = lo0;
    }
    x[0] = c0; x[1] = c1; x[2] = c2; x[3] = c3;
}

/* ================================ float32 ================================ */
VI_FN vf u01_f32_v(vu w)
{
    return f_mul(f_of_i32(u_srl(w, 8)), f_set1(0x1p-24f));
}

VI_FN vf u01_open_f32_v(vu w)
{
    return f_mul(f_of_i32(u_or(u_srl(w, 8), u_set1(1u))), f_set1(0x1p-24f));
}

VI_FN vf flip_sign_f32(vf x, vu sign_bits)
{
    return f_of_bits(u_xor(u_of_f(x), sign_bits));
}

VI_FN vf neg_f32(vf x)
{
    return flip_sign_f32(x, u_set1(0x80000000u));
}

/* vi_poly_f32 lane by lane: Horner from the highest degree of a poly_coeffs.h table. */
VI_FN vf poly_f32_v(const float *c, int n, vf x)
{
    vf acc = f_set1(c[n - 1]);
#pragma GCC unroll 16
    for (int k = n - 2; k >= 0; k--)
        acc = f_add(f_mul(acc, x), f_set1(c[k]));
    return acc;
}

VI_FN vf log_f32_v(vf x)
{
    vu ix = u_add(u_of_f(x), u_set1(0x3f800000u - VI_SQRT_HALF_BITS_F));
    vf kf = f_of_i32(u_sub(u_srl(ix, 23), u_set1(127u)));
    vf m = f_of_bits(u_add(u_and(ix, u_set1(0x007fffffu)), u_set1(VI_SQRT_HALF_BITS_F)));
    vf f = f_sub(m, f_set1(1.0f));
    vf s = f_div(f, f_add(f_set1(2.0f), f));
    vf z = f_mul(s, s);
    vf p = f_mul(z, poly_f32_v(vi_log_series_f32, VI_NCOEF(vi_log_series_f32), z));
    vf two_s = f_mul(f_set1(2.0f), s);
    vf logm = f_add(two_s, f_mul(two_s, p));
    return f_add(f_mul(kf, f_set1(VI_LN2_HI_F)), f_add(f_mul(kf, f_set1(VI_LN2_LO_F)), logm));
}

VI_FN vf bm_radius_f32_v(vu w)
{
    vf u1 = f_mul(f_of_i32(u_or(u_srl(w, 1), u_set1(1u))), f_set1(0x1p-31f));
    return f_sqrt(f_mul(f_set1(-2.0f), log_f32_v(u1)));
}

VI_FN void sincos_octant_f32_v(vf phi, vf *s, vf *c)
{
    vf z = f_mul(phi, phi);
    *s = f_add(phi, f_mul(phi, f_mul(z, poly_f32_v(vi_sin_series_f32, VI_NCOEF(vi_sin_series_f32), z))));
    *c = poly_f32_v(vi_cos_series_f32, VI_NCOEF(vi_cos_series_f32), z);
}

/* vi_sincos_turn_f32 with the two swaps (upper half of the quadrant, odd
 * quadrant) merged into one select and the quadrant signs as sign-bit xors:
 * sin is negative in quadrants 2, 3 (bit 31), cos in 1, 2 (bit 31 ^ bit 30). */
VI_FN void sincos_turn_f32_v(vu w, vf *s, vf *c)
{
    vu t = u_and(u_srl(w, 6), u_set1(0xFFFFFFu));
    vu below_mid = u_sub(u_set1(0x800000u), t); /* bit 31 set: t > 2^23, the upper half */
    vm upper = m_sign(below_mid);
    vf g = f_mul(f_sel(upper, f_of_i32(u_sub(u_set1(0x1000000u), t)), f_of_i32(t)),
                 f_set1(0x1p-24f));
    vf so, co;
    sincos_octant_f32_v(f_mul(g, f_set1(VI_PI_2_F)), &so, &co);
    vm swap = m_sign(u_xor(below_mid, u_sll(w, 1)));
    vu sign = u_set1(0x80000000u);
    *s = flip_sign_f32(f_sel(swap, co, so), u_and(w, sign));
    *c = flip_sign_f32(f_sel(swap, so, co), u_and(u_xor(w, u_sll(w, 1)), sign));
}

/* vi_ppnd_lower_f32 split by region. Central region (q = p - 0.5 >= -0.425): */
VI_FN vf ppnd_central_f32_v(vf q)
{
    vf r = f_sub(f_set1(VI_PPND_CONST1_F), f_mul(q, q));
    vf num = f_mul(q, poly_f32_v(vi_ppnd7_a, VI_NCOEF(vi_ppnd7_a), r));
    vf den = poly_f32_v(vi_ppnd7_b, VI_NCOEF(vi_ppnd7_b), r);
    return f_div(num, den);
}

/* The tail, r = sqrt(-log p): the regions r <= 5 and r > 5 are each computed
 * only if some lane needs them, and one division serves both. */
VI_FN vf ppnd_tail_f32_v(vf p)
{
    vf r = f_sqrt(neg_f32(log_f32_v(p)));
    vm mid = f_le(r, f_set1(VI_PPND_SPLIT2_F));
    vf num = f_set1(0.0f), den = f_set1(1.0f);
    if (m_any(mid)) {
        vf rm = f_sub(r, f_set1(VI_PPND_CONST2_F));
        num = poly_f32_v(vi_ppnd7_c, VI_NCOEF(vi_ppnd7_c), rm);
        den = poly_f32_v(vi_ppnd7_d, VI_NCOEF(vi_ppnd7_d), rm);
    }
    if (m_any(m_not(mid))) {
        vf rf = f_sub(r, f_set1(VI_PPND_SPLIT2_F));
        num = f_sel(mid, num, poly_f32_v(vi_ppnd7_e, VI_NCOEF(vi_ppnd7_e), rf));
        den = f_sel(mid, den, poly_f32_v(vi_ppnd7_f, VI_NCOEF(vi_ppnd7_f), rf));
    }
    return neg_f32(f_div(num, den));
}

/* vi_trunc_f32 up to the quantile: p of the side sampled from (the smaller one). */
VI_FN vf trunc_p_f32_v(const vi_plan *p, vu w, vm *below)
{
    vf u = u01_open_f32_v(w), width = f_set1(p->width_f);
    vf from_below = f_add(f_set1(p->pa_f), f_mul(u, width));
    vf from_above = f_add(f_set1(p->qb_f), f_mul(f_sub(f_set1(1.0f), u), width));
    *below = f_le(from_below, from_above);
    return f_sel(*below, from_below, from_above);
}

/* ... and after it: the side's sign, lo + scale * z, the scalar clamps in their order. */
VI_FN vf trunc_out_f32_v(const vi_plan *p, vm below, vf z)
{
    z = f_sel(below, z, neg_f32(z));
    vf x = f_add(f_set1(p->lo_f), f_mul(f_set1(p->scale_f), z));
    vf lo = f_set1(p->clamp_lo_f), hi = f_set1(p->clamp_hi_f);
    x = f_sel(f_lt(x, lo), lo, x);
    return f_sel(f_gt(x, hi), hi, x);
}

/* For a central interval few lanes are in a tail (p < 0.075: 5.5% for
 * [-2, 2]), yet most vectors hold one, and the tail costs two divisions and a
 * square root. So a vector's scattered tail lanes are deferred: their p (signed
 * by the side) and destinations are collected and computed VI_W at a time
 * after a batch of groups. Each lane still performs the scalar operations on
 * its own value, so the bits do not change. A vector of tail lanes only (a
 * far interval) is computed directly. */
#define VI_TRUNC_BATCH 16 /* groups between computations of deferred lanes */
#define VI_ALL_LANES ((1u << VI_W) - 1)

typedef struct {
    float *base;                                        /* the batch's first output */
    float p[VI_TRUNC_BATCH * VI_GROUP_F32 + VI_W];      /* negative: sampled from above */
    uint32_t at[VI_TRUNC_BATCH * VI_GROUP_F32 + VI_W];  /* destinations, from base */
    size_t n;
} vi_deferred_f32;

VI_FN void trunc_vector_f32(const vi_plan *p, vu w, float *dst, vi_deferred_f32 *tail)
{
    vm below;
    vf pr = trunc_p_f32_v(p, w, &below);
    vf q = f_sub(pr, f_set1(0.5f));
    vm tail_mask = m_not(f_ge(q, f_set1(-VI_PPND_SPLIT1_F)));
    unsigned tail_lanes = m_bits(tail_mask);
    if (tail_lanes == VI_ALL_LANES) {
        f_store(dst, trunc_out_f32_v(p, below, ppnd_tail_f32_v(pr)));
        return;
    }
    f_store(dst, trunc_out_f32_v(p, below, ppnd_central_f32_v(q)));
    if (tail_lanes) {
        vf signed_p = f_sel(below, pr, neg_f32(pr));
        uint32_t at = (uint32_t)(dst - tail->base);
#ifdef VI_HAVE_COMPRESS
        /* the selected lanes, packed: the buffers have VI_W spare entries */
        f_compress_store(tail->p + tail->n, tail_mask, signed_p);
        u_compress_store(tail->at + tail->n, tail_mask, u_add(u_set1(at), u_lanes()));
        tail->n += (size_t)__builtin_popcount(tail_lanes);
#else
        float lanes[VI_W];
        f_store(lanes, signed_p);
        for (; tail_lanes; tail_lanes &= tail_lanes - 1) {
            int l = __builtin_ctz(tail_lanes);
            tail->p[tail->n] = lanes[l];
            tail->at[tail->n++] = at + (uint32_t)l;
        }
#endif
    }
}

VI_FN void trunc_deferred_f32(const vi_plan *p, vi_deferred_f32 *tail)
{
    for (size_t k = 0; k < tail->n; k += VI_W) {
        float x[VI_W];
        for (size_t j = tail->n; j < k + VI_W; j++)
            tail->p[j] = 0.25f; /* padding lanes: any valid p */
        vf signed_p = f_load(tail->p + k);
        vm below = f_gt(signed_p, f_set1(0.0f)); /* p > 0: width >= 1e-30, u >= 2^-24 */
        vf pr = f_sel(below, signed_p, neg_f32(signed_p));
        f_store(x, trunc_out_f32_v(p, below, ppnd_tail_f32_v(pr)));
        for (size_t j = k; j < tail->n && j < k + VI_W; j++)
            tail->base[tail->at[j]] = x[j - k];
    }
    tail->n = 0;
}

/* vi_uniform_f32: lo + scale * u, clamped into the dtype's [low, high) */
VI_KERNEL void uniform_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                           size_t n, float *out)
{
    vi_philox_v ph;
    philox_v_init(&ph, key, stream);
    vf lo = f_set1(p->lo_f), scale = f_set1(p->scale_f);
    vf first = f_set1(p->clamp_lo_f), last = f_set1(p->clamp_hi_f);
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32)
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            philox_v(&ph, g0 + g, c, x);
            for (int w = 0; w < 4; w++) {
                vf v = f_add(lo, f_mul(scale, u01_f32_v(x[w])));
                f_store(out + 16 * w + c * VI_W, f_min(f_max(v, first), last));
            }
        }
}

VI_KERNEL void normal_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                          size_t n, float *out)
{
    vi_philox_v ph;
    philox_v_init(&ph, key, stream);
    vf lo = f_set1(p->lo_f), scale = f_set1(p->scale_f);
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32)
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            philox_v(&ph, g0 + g, c, x);
            for (int h = 0; h < 2; h++) {
                vf r = bm_radius_f32_v(x[2 * h]), s, co;
                sincos_turn_f32_v(x[2 * h + 1], &s, &co);
                f_store(out + 32 * h + c * VI_W, f_add(lo, f_mul(scale, f_mul(r, co))));
                f_store(out + 32 * h + 16 + c * VI_W, f_add(lo, f_mul(scale, f_mul(r, s))));
            }
        }
}

VI_KERNEL void trunc_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                         size_t n, float *out)
{
    vi_philox_v ph;
    vi_deferred_f32 tail;
    philox_v_init(&ph, key, stream);
    tail.n = 0;
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32) {
        if (g % VI_TRUNC_BATCH == 0)
            tail.base = out;
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            philox_v(&ph, g0 + g, c, x);
            for (int w = 0; w < 4; w++)
                trunc_vector_f32(p, x[w], out + 16 * w + c * VI_W, &tail);
        }
        if ((g + 1) % VI_TRUNC_BATCH == 0 || g + 1 == n)
            trunc_deferred_f32(p, &tail);
    }
}

/* ================================ float64 ================================ */
#define VI_W64 (VI_W / 2)

VI_FN vd u01_f64_v(vq v)
{
    return d_mul(d_of_q53(q_srl(v, 11)), d_set1(0x1p-53));
}

VI_FN vd u01_open_f64_v(vq v)
{
    return d_mul(d_of_q53(q_or(q_srl(v, 11), q_set1(1u))), d_set1(0x1p-53));
}

VI_FN vd flip_sign_f64(vd x, vq sign_bits)
{
    return d_of_bits(q_xor(q_of_d(x), sign_bits));
}

VI_FN vd neg_f64(vd x)
{
    return flip_sign_f64(x, q_set1(0x8000000000000000ull));
}

/* vi_poly_f64 lane by lane */
VI_FN vd poly_f64_v(const double *c, int n, vd x)
{
    vd acc = d_set1(c[n - 1]);
#pragma GCC unroll 16
    for (int k = n - 2; k >= 0; k--)
        acc = d_add(d_mul(acc, x), d_set1(c[k]));
    return acc;
}

VI_FN vd log_f64_v(vd x)
{
    vq ix = q_add(q_of_d(x), q_set1(0x3ff0000000000000ull - VI_SQRT_HALF_BITS));
    /* (double)(ix >> 52) - 1023 is exact, so equal to the scalar (double)(k) */
    vd kf = d_sub(d_of_q53(q_srl(ix, 52)), d_set1(1023.0));
    vd m = d_of_bits(q_add(q_and(ix, q_set1(0x000fffffffffffffull)), q_set1(VI_SQRT_HALF_BITS)));
    vd f = d_sub(m, d_set1(1.0));
    vd s = d_div(f, d_add(d_set1(2.0), f));
    vd z = d_mul(s, s);
    vd p = d_mul(z, poly_f64_v(vi_log_series_f64, VI_NCOEF(vi_log_series_f64), z));
    vd two_s = d_mul(d_set1(2.0), s);
    vd logm = d_add(two_s, d_mul(two_s, p));
    return d_add(d_mul(kf, d_set1(VI_LN2_HI)), d_add(d_mul(kf, d_set1(VI_LN2_LO)), logm));
}

VI_FN vd bm_radius_f64_v(vq v)
{
    vd u1 = d_mul(d_of_q53(q_or(q_srl(v, 11), q_set1(1u))), d_set1(0x1p-53));
    return d_sqrt(d_mul(d_set1(-2.0), log_f64_v(u1)));
}

VI_FN void sincos_octant_f64_v(vd phi, vd *s, vd *c)
{
    vd z = d_mul(phi, phi);
    *s = d_add(phi, d_mul(phi, d_mul(z, poly_f64_v(vi_sin_series_f64, VI_NCOEF(vi_sin_series_f64), z))));
    *c = poly_f64_v(vi_cos_series_f64, VI_NCOEF(vi_cos_series_f64), z);
}

/* vi_sincos_turn_f64, as in sincos_turn_f32_v: quadrant bits 63 and 62. */
VI_FN void sincos_turn_f64_v(vq v, vd *s, vd *c)
{
    vq t = q_and(q_srl(v, 9), q_set1((1ull << 53) - 1));
    vq below_mid = q_sub(q_set1(1ull << 52), t); /* bit 63 set: t > 2^52 */
    vmd upper = md_sign(below_mid);
    vd g = d_mul(d_sel(upper, d_of_q53(q_sub(q_set1(1ull << 53), t)), d_of_q53(t)),
                 d_set1(0x1p-53));
    vd so, co;
    sincos_octant_f64_v(d_mul(g, d_set1(VI_PI_2)), &so, &co);
    vmd swap = md_sign(q_xor(below_mid, q_sll(v, 1)));
    vq sign = q_set1(0x8000000000000000ull);
    *s = flip_sign_f64(d_sel(swap, co, so), q_and(v, sign));
    *c = flip_sign_f64(d_sel(swap, so, co), q_and(q_xor(v, q_sll(v, 1)), sign));
}

/* vi_ppnd_lower_f64 split by region, as for float32 */
VI_FN vd ppnd_central_f64_v(vd q)
{
    vd r = d_sub(d_set1(VI_PPND_CONST1), d_mul(q, q));
    vd num = d_mul(q, poly_f64_v(vi_ppnd16_a, VI_NCOEF(vi_ppnd16_a), r));
    vd den = poly_f64_v(vi_ppnd16_b, VI_NCOEF(vi_ppnd16_b), r);
    return d_div(num, den);
}

VI_FN vd ppnd_tail_f64_v(vd p)
{
    vd r = d_sqrt(neg_f64(log_f64_v(p)));
    vmd mid = d_le(r, d_set1(VI_PPND_SPLIT2));
    vd num = d_set1(0.0), den = d_set1(1.0);
    if (md_any(mid)) {
        vd rm = d_sub(r, d_set1(VI_PPND_CONST2));
        num = poly_f64_v(vi_ppnd16_c, VI_NCOEF(vi_ppnd16_c), rm);
        den = poly_f64_v(vi_ppnd16_d, VI_NCOEF(vi_ppnd16_d), rm);
    }
    if (md_any(md_not(mid))) {
        vd rf = d_sub(r, d_set1(VI_PPND_SPLIT2));
        num = d_sel(mid, num, poly_f64_v(vi_ppnd16_e, VI_NCOEF(vi_ppnd16_e), rf));
        den = d_sel(mid, den, poly_f64_v(vi_ppnd16_f, VI_NCOEF(vi_ppnd16_f), rf));
    }
    return neg_f64(d_div(num, den));
}

VI_FN vd trunc_p_f64_v(const vi_plan *p, vq v, vmd *below)
{
    vd u = u01_open_f64_v(v), width = d_set1(p->width_d);
    vd from_below = d_add(d_set1(p->pa_d), d_mul(u, width));
    vd from_above = d_add(d_set1(p->qb_d), d_mul(d_sub(d_set1(1.0), u), width));
    *below = d_le(from_below, from_above);
    return d_sel(*below, from_below, from_above);
}

VI_FN vd trunc_out_f64_v(const vi_plan *p, vmd below, vd z)
{
    z = d_sel(below, z, neg_f64(z));
    vd x = d_add(d_set1(p->lo_d), d_mul(d_set1(p->scale_d), z));
    vd lo = d_set1(p->clamp_lo_d), hi = d_set1(p->clamp_hi_d);
    x = d_sel(d_lt(x, lo), lo, x);
    return d_sel(d_gt(x, hi), hi, x);
}

/* Deferred tail lanes, as for float32. */
#define VI_ALL_LANES64 ((1u << VI_W64) - 1)

typedef struct {
    double p[VI_TRUNC_BATCH * VI_GROUP_F64 + VI_W64];
    double *at[VI_TRUNC_BATCH * VI_GROUP_F64];
    size_t n;
} vi_deferred_f64;

VI_FN void trunc_vector_f64(const vi_plan *p, vq v, double *dst, vi_deferred_f64 *tail)
{
    vmd below;
    vd pr = trunc_p_f64_v(p, v, &below);
    vd q = d_sub(pr, d_set1(0.5));
    unsigned tail_lanes = md_bits(md_not(d_ge(q, d_set1(-VI_PPND_SPLIT1))));
    if (tail_lanes == VI_ALL_LANES64) {
        d_store(dst, trunc_out_f64_v(p, below, ppnd_tail_f64_v(pr)));
        return;
    }
    d_store(dst, trunc_out_f64_v(p, below, ppnd_central_f64_v(q)));
    if (tail_lanes) {
        double lanes[VI_W64];
        d_store(lanes, d_sel(below, pr, neg_f64(pr)));
        for (; tail_lanes; tail_lanes &= tail_lanes - 1) {
            int l = __builtin_ctz(tail_lanes);
            tail->p[tail->n] = lanes[l];
            tail->at[tail->n++] = dst + l;
        }
    }
}

VI_FN void trunc_deferred_f64(const vi_plan *p, vi_deferred_f64 *tail)
{
    for (size_t k = 0; k < tail->n; k += VI_W64) {
        double x[VI_W64];
        for (size_t j = tail->n; j < k + VI_W64; j++)
            tail->p[j] = 0.25;
        vd signed_p = d_load(tail->p + k);
        vmd below = d_gt(signed_p, d_set1(0.0)); /* p > 0: width >= 1e-300, u >= 2^-53 */
        vd pr = d_sel(below, signed_p, neg_f64(signed_p));
        d_store(x, trunc_out_f64_v(p, below, ppnd_tail_f64_v(pr)));
        for (size_t j = k; j < tail->n && j < k + VI_W64; j++)
            *tail->at[j] = x[j - k];
    }
    tail->n = 0;
}

/* 64-bit word h of the chunk's lanes, as two vectors of VI_W64 lanes. */
VI_FN void words64(const vu x[4], int h, vq v[2])
{
    v[0] = q_join(x[2 * h], x[2 * h + 1], 0);
    v[1] = q_join(x[2 * h], x[2 * h + 1], 1);
}

VI_KERNEL void uniform_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                           size_t n, double *out)
{
    vi_philox_v ph;
    philox_v_init(&ph, key, stream);
    vd lo = d_set1(p->lo_d), scale = d_set1(p->scale_d);
    vd first = d_set1(p->clamp_lo_d), last = d_set1(p->clamp_hi_d);
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64)
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            philox_v(&ph, g0 + g, c, x);
            for (int h = 0; h < 2; h++) {
                vq v[2];
                words64(x, h, v);
                for (int k = 0; k < 2; k++) {
                    vd u = d_add(lo, d_mul(scale, u01_f64_v(v[k])));
                    d_store(out + 16 * h + c * VI_W + k * VI_W64, d_min(d_max(u, first), last));
                }
            }
        }
}

VI_KERNEL void normal_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                          size_t n, double *out)
{
    vi_philox_v ph;
    philox_v_init(&ph, key, stream);
    vd lo = d_set1(p->lo_d), scale = d_set1(p->scale_d);
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64)
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            vq v0[2], v1[2];
            philox_v(&ph, g0 + g, c, x);
            words64(x, 0, v0);
            words64(x, 1, v1);
            for (int k = 0; k < 2; k++) {
                vd r = bm_radius_f64_v(v0[k]), s, co;
                sincos_turn_f64_v(v1[k], &s, &co);
                d_store(out + c * VI_W + k * VI_W64, d_add(lo, d_mul(scale, d_mul(r, co))));
                d_store(out + 16 + c * VI_W + k * VI_W64, d_add(lo, d_mul(scale, d_mul(r, s))));
            }
        }
}

VI_KERNEL void trunc_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0,
                         size_t n, double *out)
{
    vi_philox_v ph;
    vi_deferred_f64 tail;
    philox_v_init(&ph, key, stream);
    tail.n = 0;
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64) {
        for (int c = 0; c < VI_CHUNKS; c++) {
            vu x[4];
            philox_v(&ph, g0 + g, c, x);
            for (int h = 0; h < 2; h++) {
                vq v[2];
                words64(x, h, v);
                for (int k = 0; k < 2; k++)
                    trunc_vector_f64(p, v[k], out + 16 * h + c * VI_W + k * VI_W64, &tail);
            }
        }
        if ((g + 1) % VI_TRUNC_BATCH == 0 || g + 1 == n)
            trunc_deferred_f64(p, &tail);
    }
}
