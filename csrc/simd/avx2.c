/*
 * AVX2 kernels: 8 lanes, a group in two chunks of 8 blocks. FMA is not enabled
 * (the scalar reference never fuses), so every multiply and add rounds on its
 * own. Masks are float vectors whose sign bit is the lane's truth value, which
 * is all blendv and movemask look at.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include "kernels.h"

#define VI_TARGET __attribute__((target("avx2")))
#define VI_FN static inline VI_TARGET
#define VI_KERNEL static VI_TARGET
#define VI_W 8

typedef __m256i vu;
typedef __m256 vf;
typedef __m256 vm;
typedef __m256i vq;
typedef __m256d vd;
typedef __m256d vmd;

/* ---- 32-bit lanes ---- */
#define u_set1(x) _mm256_set1_epi32((int)(x))
#define u_lanes() _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define u_add _mm256_add_epi32
#define u_sub _mm256_sub_epi32
#define u_xor _mm256_xor_si256
#define u_and _mm256_and_si256
#define u_or _mm256_or_si256
#define u_srl(a, n) _mm256_srli_epi32((a), (n))
#define u_sll(a, n) _mm256_slli_epi32((a), (n))

VI_FN void u_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    vu even = _mm256_mul_epu32(a, m);
    vu odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

#define f_of_i32 _mm256_cvtepi32_ps
#define f_of_bits _mm256_castsi256_ps
#define u_of_f _mm256_castps_si256
#define f_set1 _mm256_set1_ps
#define f_add _mm256_add_ps
#define f_sub _mm256_sub_ps
#define f_mul _mm256_mul_ps
#define f_div _mm256_div_ps
#define f_sqrt _mm256_sqrt_ps
#define f_lt(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define f_le(a, b) _mm256_cmp_ps((a), (b), _CMP_LE_OQ)
#define f_gt(a, b) _mm256_cmp_ps((a), (b), _CMP_GT_OQ)
#define f_ge(a, b) _mm256_cmp_ps((a), (b), _CMP_GE_OQ)
#define f_sel(m, a, b) _mm256_blendv_ps((b), (a), (m))
#define f_min _mm256_min_ps /* a < b ? a : b */
#define f_max _mm256_max_ps /* a > b ? a : b */
#define f_store _mm256_storeu_ps
#define f_load _mm256_loadu_ps
#define m_sign _mm256_castsi256_ps
#define m_not(a) _mm256_xor_ps((a), _mm256_castsi256_ps(_mm256_set1_epi32(-1)))
#define m_any(a) (_mm256_movemask_ps(a) != 0)
#define m_bits(a) ((unsigned)_mm256_movemask_ps(a))

/* ---- 64-bit lanes ---- */
/* 64-bit words hi:lo of lanes 4h .. 4h+3 */
VI_FN vq q_join(vu lo, vu hi, int h)
{
    vu a = _mm256_unpacklo_epi32(lo, hi); /* lanes 0, 1 | 4, 5 */
    vu b = _mm256_unpackhi_epi32(lo, hi); /* lanes 2, 3 | 6, 7 */
    return h ? _mm256_permute2x128_si256(a, b, 0x31) : _mm256_permute2x128_si256(a, b, 0x20);
}

#define q_set1(x) _mm256_set1_epi64x((long long)(x))
#define q_add _mm256_add_epi64
#define q_sub _mm256_sub_epi64
#define q_xor _mm256_xor_si256
#define q_and _mm256_and_si256
#define q_or _mm256_or_si256
#define q_srl(a, n) _mm256_srli_epi64((a), (n))
#define q_sll(a, n) _mm256_slli_epi64((a), (n))

/* AVX2 has no 64-bit integer conversion. Each 32-bit half becomes a double
 * exactly (placed in the mantissa of 2^52, then 2^52 subtracted), and
 * hi * 2^32 + lo is exact because the sum is an integer below 2^53. */
VI_FN vd d_of_q53(vq v)
{
    const vq two52_bits = _mm256_set1_epi64x(0x4330000000000000ll);
    const vd two52 = _mm256_set1_pd(0x1p52);
    vq hi_bits = _mm256_or_si256(_mm256_srli_epi64(v, 32), two52_bits);
    vq lo_bits = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi64x(0xffffffffll)), two52_bits);
    vd hi = _mm256_sub_pd(_mm256_castsi256_pd(hi_bits), two52);
    vd lo = _mm256_sub_pd(_mm256_castsi256_pd(lo_bits), two52);
    return _mm256_add_pd(_mm256_mul_pd(hi, _mm256_set1_pd(0x1p32)), lo);
}

#define d_of_bits _mm256_castsi256_pd
#define q_of_d _mm256_castpd_si256
#define d_set1 _mm256_set1_pd
#define d_add _mm256_add_pd
#define d_sub _mm256_sub_pd
#define d_mul _mm256_mul_pd
#define d_div _mm256_div_pd
#define d_sqrt _mm256_sqrt_pd
#define d_lt(a, b) _mm256_cmp_pd((a), (b), _CMP_LT_OQ)
#define d_le(a, b) _mm256_cmp_pd((a), (b), _CMP_LE_OQ)
#define d_gt(a, b) _mm256_cmp_pd((a), (b), _CMP_GT_OQ)
#define d_ge(a, b) _mm256_cmp_pd((a), (b), _CMP_GE_OQ)
#define d_sel(m, a, b) _mm256_blendv_pd((b), (a), (m))
#define d_min _mm256_min_pd
#define d_max _mm256_max_pd
#define d_store _mm256_storeu_pd
#define d_load _mm256_loadu_pd
#define md_sign _mm256_castsi256_pd
#define md_not(a) _mm256_xor_pd((a), _mm256_castsi256_pd(_mm256_set1_epi64x(-1)))
#define md_any(a) (_mm256_movemask_pd(a) != 0)
#define md_bits(a) ((unsigned)_mm256_movemask_pd(a))

#include "vector_kernels.h"

const vi_kernels vi_kernels_avx2 = {
    "avx2",
    {uniform_f32, normal_f32, trunc_f32},
    {uniform_f64, normal_f64, trunc_f64},
};
#endif
