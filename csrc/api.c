/*
 * The entry points of the public header that are not a subsystem of their
 * own: vi_fill (checks, then the layout walker of fill.c), the status texts,
 * and small exports of the sampling definitions. Fans are in fans.c, threads
 * in parallel.c, instruction sets in simd/dispatch.c, the normal CDF in
 * dist/normal_cdf.c.
 */
#include "varinit.h"
#include "fill.h"
#include "dist/plan.h"
#include "dist/sample.h"

vi_status vi_fill(const vi_block *b, const vi_params *params, uint64_t key, uint64_t stream)
{
    vi_plan plan;
    vi_status st;
    /* the order of the checks decides which error a doubly bad call reports */
    if (!vi_itemsize(b->dtype))
        return VI_EINVAL_DTYPE;
    if ((st = vi_plan_prepare(params, b->dtype, &plan)) != VI_OK)
        return st;
    return vi_walk_fill(b, &plan, key, stream);
}

double vi_normal_max_abs_z(int dtype)
{
    return dtype == VI_F64 ? VI_MAX_Z_F64 : VI_MAX_Z_F32;
}

void vi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    vi_philox10(ctr, key[0], key[1], out);
}

const char *vi_status_message(vi_status s)
{
    switch (s) {
    case VI_OK: return "ok";
    case VI_EINVAL_DIST: return "unknown distribution";
    case VI_EINVAL_DTYPE: return "unsupported dtype";
    case VI_EINVAL_PARAM: return "invalid distribution parameters";
    case VI_EINVAL_SHAPE: return "invalid shape: too few or too many dimensions, a negative extent, "
                                 "or a block outside its global shape";
    case VI_EINVAL_LAYOUT: return "invalid layer description: an unknown layer kind, a groups, blocks, "
                                  "stride, dilation or axis value out of range or not applicable to "
                                  "the layer, or a channel count they do not divide";
    case VI_ETAIL: return "truncation interval has numerically zero probability";
    case VI_EOVERFLOW: return "too large: an element count, index or fan overflows";
    case VI_EISA: return "VARINIT_ISA names an instruction set this machine cannot run";
    }
    return "unknown status";
}
