/*
 * Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3" (SC'11). A pure function of
 * (counter, key): no state, so any element can be computed on its own.
 */
#ifndef VI_PHILOX_H
#define VI_PHILOX_H

#include <stdint.h>

#define VI_PHILOX_M0 0xD2511F53u
#define VI_PHILOX_M1 0xCD9E8D57u
#define VI_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define VI_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void vi_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)VI_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)VI_PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c[0] = hi1 ^ c[1] ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c[3] ^ k1;
    c[3] = lo0;
}

static inline void vi_philox10(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += VI_PHILOX_W0;
            k1 += VI_PHILOX_W1;
        }
        vi_philox_round(c, k0, k1);
    }
    out[0] = c[0]; out[1] = c[1]; out[2] = c[2]; out[3] = c[3];
}

/* The block of words for Philox block index `block` of stream `stream`:
 * counter = (block lo, block hi, stream lo, stream hi), key = (key lo, key hi). */
static inline void vi_philox_block(uint64_t key, uint64_t stream, uint64_t block, uint32_t out[4])
{
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32),
                             (uint32_t)stream, (uint32_t)(stream >> 32)};
    vi_philox10(ctr, (uint32_t)key, (uint32_t)(key >> 32), out);
}

#endif /* VI_PHILOX_H */
