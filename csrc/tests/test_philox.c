/* Philox4x32-10 against the Random123 known-answer vectors (kat_vectors). */
#include <stdio.h>
#include "varinit.h"

static const struct { uint32_t ctr[4], key[2], expect[4]; } KAT[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000}, {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

int main(void)
{
    int failed = 0, n = (int)(sizeof KAT / sizeof KAT[0]);
    for (int k = 0; k < n; k++) {
        uint32_t out[4];
        vi_philox4x32_10(KAT[k].ctr, KAT[k].key, out);
        for (int w = 0; w < 4; w++)
            if (out[w] != KAT[k].expect[w]) {
                printf("philox KAT %d word %d: got %08x want %08x\n", k, w, out[w], KAT[k].expect[w]);
                failed++;
            }
    }
    printf("test_philox: %d passed, %d failed\n", failed ? 0 : n, failed ? 1 : 0);
    return failed != 0;
}
