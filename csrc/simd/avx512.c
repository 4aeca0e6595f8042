/*
 * AVX-512 kernels (F + DQ): 16 lanes, one vector per word of a group.
 * The target attribute lets one build (plain x86-64 flags) carry this code;
 * dispatch.c calls it only on CPUs and OSes that run AVX-512, since on any
 * other machine its first instruction would fault.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include "kernels.h"

#define VI_TARGET __attribute__((target("avx512f,avx512dq")))
#define VI_FN static inline VI_TARGET
#define VI_KERNEL static VI_TARGET
#define VI_W 16

typedef __m512i vu;
typedef __m512 vf;
typedef __mmask16 vm;
typedef __m512i vq;
typedef __m512d vd;
typedef __mmask8 vmd;

/* ---- 32-bit lanes ---- */
#define u_set1(x) _mm512_set1_epi32((int)(x))
#define u_lanes() _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define u_add _mm512_add_epi32
#define u_sub _mm512_sub_epi32
#define u_xor _mm512_xor_si512
#define u_and _mm512_and_si512
#define u_or _mm512_or_si512
#define u_srl(a, n) _mm512_srli_epi32((a), (n))
#define u_sll(a, n) _mm512_slli_epi32((a), (n))

/* 32 x 32 -> 64 products of the even lanes, and of the odd lanes moved down;
 * one two-source permute each gathers the high and the low halves. */
VI_FN void u_mulhilo(vu a, vu m, vu *hi, vu *lo)
{
    const vu high_halves = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29,
                                             15, 31);
    const vu low_halves = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28,
                                            14, 30);
    vu even = _mm512_mul_epu32(a, m);
    vu odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *hi = _mm512_permutex2var_epi32(even, high_halves, odd);
    *lo = _mm512_permutex2var_epi32(even, low_halves, odd);
}

#define u_xor3(a, b, c) _mm512_ternarylogic_epi32((a), (b), (c), 0x96) /* a ^ b ^ c */

#define f_of_i32 _mm512_cvtepi32_ps
#define f_of_bits _mm512_castsi512_ps
#define u_of_f _mm512_castps_si512
#define f_set1 _mm512_set1_ps
#define f_add _mm512_add_ps
#define f_sub _mm512_sub_ps
#define f_mul _mm512_mul_ps
#define f_div _mm512_div_ps
#define f_sqrt _mm512_sqrt_ps
#define f_lt(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define f_le(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LE_OQ)
#define f_gt(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GT_OQ)
#define f_ge(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GE_OQ)
#define f_sel(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
#define f_min _mm512_min_ps /* a < b ? a : b */
#define f_max _mm512_max_ps /* a > b ? a : b */
#define f_store _mm512_storeu_ps
#define f_load _mm512_loadu_ps
#define m_sign _mm512_movepi32_mask
#define m_not _knot_mask16
#define m_any(a) ((a) != 0)
#define m_bits(a) ((unsigned)(a))
#define VI_HAVE_COMPRESS 1
#define f_compress_store(dst, m, x) _mm512_storeu_ps((dst), _mm512_maskz_compress_ps((m), (x)))
#define u_compress_store(dst, m, x) \
    _mm512_storeu_si512((dst), _mm512_maskz_compress_epi32((m), (x)))

/* ---- 64-bit lanes ---- */
/* 64-bit words hi:lo of lanes 8h .. 8h+7 */
VI_FN vq q_join(vu lo, vu hi, int h)
{
    const vu first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const vu second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                        15, 31);
    return _mm512_permutex2var_epi32(lo, h ? second : first, hi);
}

#define q_set1(x) _mm512_set1_epi64((long long)(x))
#define q_add _mm512_add_epi64
#define q_sub _mm512_sub_epi64
#define q_xor _mm512_xor_si512
#define q_and _mm512_and_si512
#define q_or _mm512_or_si512
#define q_srl(a, n) _mm512_srli_epi64((a), (n))
#define q_sll(a, n) _mm512_slli_epi64((a), (n))
#define d_of_q53 _mm512_cvtepi64_pd /* exact below 2^53 */
#define d_of_bits _mm512_castsi512_pd
#define q_of_d _mm512_castpd_si512
#define d_set1 _mm512_set1_pd
#define d_add _mm512_add_pd
#define d_sub _mm512_sub_pd
#define d_mul _mm512_mul_pd
#define d_div _mm512_div_pd
#define d_sqrt _mm512_sqrt_pd
#define d_lt(a, b) _mm512_cmp_pd_mask((a), (b), _CMP_LT_OQ)
#define d_le(a, b) _mm512_cmp_pd_mask((a), (b), _CMP_LE_OQ)
#define d_gt(a, b) _mm512_cmp_pd_mask((a), (b), _CMP_GT_OQ)
#define d_ge(a, b) _mm512_cmp_pd_mask((a), (b), _CMP_GE_OQ)
#define d_sel(m, a, b) _mm512_mask_blend_pd((m), (b), (a))
#define d_min _mm512_min_pd
#define d_max _mm512_max_pd
#define d_store _mm512_storeu_pd
#define d_load _mm512_loadu_pd
#define md_sign _mm512_movepi64_mask
#define md_not _knot_mask8
#define md_any(a) ((a) != 0)
#define md_bits(a) ((unsigned)(a))

#include "vector_kernels.h"

const vi_kernels vi_kernels_avx512 = {
    "avx512",
    {uniform_f32, normal_f32, trunc_f32},
    {uniform_f64, normal_f64, trunc_f64},
};
#endif
