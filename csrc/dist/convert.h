/* float32 -> float16 / bfloat16, round to nearest even, NaN kept quiet; and back
 * (exact: every float16 and bfloat16 value is a float32 value). */
#ifndef VI_CONVERT_H
#define VI_CONVERT_H

#include <stdint.h>
#include "poly_math.h"

static inline uint16_t vi_f32_to_bf16(float f)
{
    uint32_t x = vi_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static inline uint16_t vi_f32_to_f16(float f)
{
    uint32_t x = vi_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf or NaN */
        return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (x >= 0x477ff000u) /* 65520 and above round to inf */
        return sign | 0x7c00u;
    if (x < 0x38800000u) { /* below 2^-14: a float16 subnormal or zero */
        uint32_t e = x >> 23, shift = 126u - e;
        if (shift > 24u)
            return sign;
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        uint32_t n = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (n & 1u)))
            n++;
        return sign | (uint16_t)n;
    }
    uint32_t h = ((x >> 23) - 112u) << 10 | ((x & 0x7fffffu) >> 13);
    uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return sign | (uint16_t)h;
}

static inline float vi_bf16_to_f32(uint16_t h)
{
    return vi_bits_f32((uint32_t)h << 16);
}

static inline float vi_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) /* inf or NaN */
        return vi_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return vi_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

#endif /* VI_CONVERT_H */
