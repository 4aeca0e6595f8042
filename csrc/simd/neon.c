/*
 * NEON kernels (AArch64, where Advanced SIMD is always present): 4 lanes, a
 * group in four chunks of 4 blocks. Masks are all-ones / all-zeros lanes.
 * On other architectures this file compiles to nothing.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include "kernels.h"

#define VI_FN static inline
#define VI_KERNEL static
#define VI_W 4

typedef uint32x4_t vu;
typedef float32x4_t vf;
typedef uint32x4_t vm;
typedef uint64x2_t vq;
typedef float64x2_t vd;
typedef uint64x2_t vmd;

/* ---- 32-bit lanes ---- */
#define u_set1(x) vdupq_n_u32((uint32_t)(x))
VI_FN vu u_lanes(void)
{
    static const uint32_t lanes[4] = {0, 1, 2, 3};
    return vld1q_u32(lanes);
}
#define u_add vaddq_u32
#define u_sub vsubq_u32
#define u_xor veorq_u32
#define u_and vandq_u32
#define u_or vorrq_u32
#define u_srl(a, n) vshrq_n_u32((a), (n))
#define u_sll(a, n) vshlq_n_u32((a), (n))

VI_FN void u_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    uint32x4_t low = vreinterpretq_u32_u64(vmull_u32(vget_low_u32(a), vget_low_u32(m)));
    uint32x4_t high = vreinterpretq_u32_u64(vmull_high_u32(a, m));
    *hi = vuzp2q_u32(low, high); /* odd 32-bit halves: the high words */
    *lo = vuzp1q_u32(low, high);
}

#define f_of_i32(a) vcvtq_f32_s32(vreinterpretq_s32_u32(a))
#define f_of_bits vreinterpretq_f32_u32
#define u_of_f vreinterpretq_u32_f32
#define f_set1 vdupq_n_f32
#define f_add vaddq_f32
#define f_sub vsubq_f32
#define f_mul vmulq_f32
#define f_div vdivq_f32
#define f_sqrt vsqrtq_f32
#define f_lt vcltq_f32
#define f_le vcleq_f32
#define f_gt vcgtq_f32
#define f_ge vcgeq_f32
#define f_sel vbslq_f32
/* vminq/vmaxq order -0 below +0 and return NaN on NaN; the definition is x86's */
VI_FN vf f_min(vf a, vf b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
VI_FN vf f_max(vf a, vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
#define f_store vst1q_f32
#define f_load vld1q_f32
#define m_sign(a) vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_u32(a), 31))
#define m_not vmvnq_u32
#define m_any(a) (vmaxvq_u32(a) != 0)
VI_FN unsigned m_bits(vm a)
{
    static const uint32_t weights[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(a, vld1q_u32(weights)));
}

/* ---- 64-bit lanes ---- */
/* 64-bit words hi:lo of lanes 2h, 2h+1 */
VI_FN vq q_join(vu lo, vu hi, int h)
{
    return vreinterpretq_u64_u32(h ? vzip2q_u32(lo, hi) : vzip1q_u32(lo, hi));
}

#define q_set1(x) vdupq_n_u64((uint64_t)(x))
#define q_add vaddq_u64
#define q_sub vsubq_u64
#define q_xor veorq_u64
#define q_and vandq_u64
#define q_or vorrq_u64
#define q_srl(a, n) vshrq_n_u64((a), (n))
#define q_sll(a, n) vshlq_n_u64((a), (n))
#define d_of_q53 vcvtq_f64_u64 /* exact below 2^53 */
#define d_of_bits vreinterpretq_f64_u64
#define q_of_d vreinterpretq_u64_f64
#define d_set1 vdupq_n_f64
#define d_add vaddq_f64
#define d_sub vsubq_f64
#define d_mul vmulq_f64
#define d_div vdivq_f64
#define d_sqrt vsqrtq_f64
#define d_lt vcltq_f64
#define d_le vcleq_f64
#define d_gt vcgtq_f64
#define d_ge vcgeq_f64
#define d_sel vbslq_f64
VI_FN vd d_min(vd a, vd b) { return vbslq_f64(vcltq_f64(a, b), a, b); }
VI_FN vd d_max(vd a, vd b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }
#define d_store vst1q_f64
#define d_load vld1q_f64
#define md_sign(a) vreinterpretq_u64_s64(vshrq_n_s64(vreinterpretq_s64_u64(a), 63))
#define md_not(a) veorq_u64((a), vdupq_n_u64(~0ull))
#define md_any(a) ((vgetq_lane_u64((a), 0) | vgetq_lane_u64((a), 1)) != 0)
#define md_bits(a) ((unsigned)((vgetq_lane_u64((a), 0) & 1) | (vgetq_lane_u64((a), 1) & 2)))

#include "vector_kernels.h"

const vi_kernels vi_kernels_neon = {
    "neon",
    {uniform_f32, normal_f32, trunc_f32},
    {uniform_f64, normal_f64, trunc_f64},
};
#endif
