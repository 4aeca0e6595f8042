/*
 * vi_fill: walking a block of any layout in logical order.
 *
 * The block is seen as `rows` runs of `run` elements that are consecutive in
 * the global row-major index (the innermost axes merged where the block spans
 * them whole and memory allows). A contiguous float32/float64 run is generated
 * in place; anything else (strides, float16, bfloat16) goes through a small
 * buffer. Work is split by element, so any thread count gives the same bits.
 */
#include <string.h>
#include "varinit.h"
#include "parallel.h"
#include "dist/plan.h"
#include "dist/sample.h"
#include "dist/convert.h"
#include "simd/kernels.h"

#define VI_BUFFER 1024         /* elements staged per buffered chunk */
#define VI_SMALL_PIECE 16      /* fewer elements than this: one at a time */
#define VI_GRAIN (1u << 16)    /* elements per thread at least */

typedef struct {
    const vi_plan *plan;
    const vi_kernels *kern;
    uint64_t key, stream;
    char *data;
    int dtype, itemsize;
    int outer;                       /* axes before the merged run */
    int64_t shape[VI_MAX_NDIM];      /* extents of the outer axes */
    int64_t mem_stride[VI_MAX_NDIM]; /* byte strides of the outer axes */
    uint64_t glob_stride[VI_MAX_NDIM];
    uint64_t origin;                 /* global index of the block's first element */
    uint64_t run;                    /* elements per run */
    int64_t run_stride;              /* byte stride inside a run */
} walk;

/* ---- generating consecutive logical elements into contiguous memory ---- */
static void gen_f64(const walk *w, uint64_t i, uint64_t n, double *out)
{
    const vi_plan *p = w->plan;
    vi_groups_f64_fn kernel = w->kern->f64[p->dist];
    while (n) {
        uint64_t off = i % VI_GROUP_F64, take = VI_GROUP_F64 - off;
        if (off == 0 && n >= VI_GROUP_F64) {
            uint64_t groups = n / VI_GROUP_F64;
            kernel(p, w->key, w->stream, i / VI_GROUP_F64, (size_t)groups, out);
            take = groups * VI_GROUP_F64;
        } else if (take > n) {
            take = n;
        }
        if (off != 0 || take < VI_GROUP_F64) {
            if (take < VI_SMALL_PIECE) {
                for (uint64_t k = 0; k < take; k++)
                    out[k] = vi_element_f64(p, w->key, w->stream, i + k);
            } else {
                double tmp[VI_GROUP_F64];
                kernel(p, w->key, w->stream, i / VI_GROUP_F64, 1, tmp);
                memcpy(out, tmp + off, take * sizeof(double));
            }
        }
        i += take; out += take; n -= take;
    }
}

static void gen_f32(const walk *w, uint64_t i, uint64_t n, float *out)
{
    const vi_plan *p = w->plan;
    if (p->compute64) {
        double tmp[VI_BUFFER];
        while (n) {
            uint64_t take = n < VI_BUFFER ? n : VI_BUFFER;
            gen_f64(w, i, take, tmp);
            for (uint64_t k = 0; k < take; k++)
                out[k] = (float)tmp[k];
            i += take; out += take; n -= take;
        }
        return;
    }
    vi_groups_f32_fn kernel = w->kern->f32[p->dist];
    while (n) {
        uint64_t off = i % VI_GROUP_F32, take = VI_GROUP_F32 - off;
        if (off == 0 && n >= VI_GROUP_F32) {
            uint64_t groups = n / VI_GROUP_F32;
            kernel(p, w->key, w->stream, i / VI_GROUP_F32, (size_t)groups, out);
            take = groups * VI_GROUP_F32;
        } else if (take > n) {
            take = n;
        }
        if (off != 0 || take < VI_GROUP_F32) {
            if (take < VI_SMALL_PIECE) {
                for (uint64_t k = 0; k < take; k++)
                    out[k] = vi_element_f32(p, w->key, w->stream, i + k);
            } else {
                float tmp[VI_GROUP_F32];
                kernel(p, w->key, w->stream, i / VI_GROUP_F32, 1, tmp);
                memcpy(out, tmp + off, take * sizeof(float));
            }
        }
        i += take; out += take; n -= take;
    }
}

/* ---- one run: n consecutive logical elements from global index i -------- */
static void fill_run(const walk *w, uint64_t i, uint64_t n, char *dst)
{
    int64_t s = w->run_stride;
    if (w->dtype == VI_F32 && s == 4) {
        gen_f32(w, i, n, (float *)dst);
        return;
    }
    if (w->dtype == VI_F64 && s == 8) {
        gen_f64(w, i, n, (double *)dst);
        return;
    }
    union { float f[VI_BUFFER]; double d[VI_BUFFER]; } buf;
    while (n) {
        uint64_t take = n < VI_BUFFER ? n : VI_BUFFER;
        switch (w->dtype) {
        case VI_F64:
            gen_f64(w, i, take, buf.d);
            for (uint64_t k = 0; k < take; k++, dst += s)
                memcpy(dst, &buf.d[k], 8);
            break;
        case VI_F32:
            gen_f32(w, i, take, buf.f);
            for (uint64_t k = 0; k < take; k++, dst += s)
                memcpy(dst, &buf.f[k], 4);
            break;
        case VI_F16:
            gen_f32(w, i, take, buf.f);
            for (uint64_t k = 0; k < take; k++, dst += s) {
                uint16_t h = vi_f32_to_f16(buf.f[k]);
                memcpy(dst, &h, 2);
            }
            break;
        default: /* VI_BF16 */
            gen_f32(w, i, take, buf.f);
            for (uint64_t k = 0; k < take; k++, dst += s) {
                uint16_t h = vi_f32_to_bf16(buf.f[k]);
                memcpy(dst, &h, 2);
            }
            break;
        }
        i += take; n -= take;
    }
}

/* Worker: elements [begin, end) of the block in logical order. */
static vi_status fill_range(void *ctx, uint64_t begin, uint64_t end)
{
    const walk *w = ctx;
    uint64_t row = begin / w->run, col = begin % w->run;
    while (begin < end) {
        uint64_t g = w->origin, r = row;
        char *dst = w->data;
        for (int ax = w->outer - 1; ax >= 0; ax--) {
            uint64_t idx = r % (uint64_t)w->shape[ax];
            r /= (uint64_t)w->shape[ax];
            g += idx * w->glob_stride[ax];
            dst += (int64_t)idx * w->mem_stride[ax];
        }
        uint64_t n = w->run - col;
        if (n > end - begin)
            n = end - begin;
        fill_run(w, g + col, n, dst + (int64_t)col * w->run_stride);
        begin += n; row++; col = 0;
    }
    return VI_OK;
}

static int itemsize_of(int dtype)
{
    switch (dtype) {
    case VI_F32: return 4;
    case VI_F64: return 8;
    case VI_F16: case VI_BF16: return 2;
    default: return 0;
    }
}

/* Checks the geometry; computes global strides, origin and the merged run. */
static vi_status describe(const vi_block *b, walk *w, uint64_t *total)
{
    int nd = b->ndim;
    if (nd < 0 || nd > VI_MAX_NDIM)
        return VI_EINVAL_SHAPE;
    uint64_t gstride[VI_MAX_NDIM + 1], count = 1, gcount = 1;
    for (int ax = nd - 1; ax >= 0; ax--) {
        int64_t ext = b->shape[ax];
        int64_t gext = b->global_shape ? b->global_shape[ax] : ext;
        int64_t st = b->start ? b->start[ax] : 0;
        if (ext < 0 || gext < 0 || st < 0 || st > gext || ext > gext - st)
            return VI_EINVAL_SHAPE;
        gstride[ax] = gcount;
        if (gext && gcount > UINT64_MAX / (uint64_t)gext)
            return VI_EOVERFLOW;
        gcount *= (uint64_t)gext;
        count *= (uint64_t)ext;
    }
    if (gcount >= (1ull << 62))
        return VI_EOVERFLOW; /* block indices 16 * (i / 64) + 15 must fit 64 bits */
    *total = count;
    w->origin = 0;
    for (int ax = 0; ax < nd; ax++)
        w->origin += (uint64_t)(b->start ? b->start[ax] : 0) * gstride[ax];
    /* merge trailing axes while the block spans them whole and memory is regular */
    int last = nd - 1;
    w->run = nd ? (uint64_t)b->shape[last] : 1;
    w->run_stride = nd ? b->strides[last] : w->itemsize;
    int ax = last - 1;
    for (; ax >= 0; ax--) {
        int64_t gext = b->global_shape ? b->global_shape[ax + 1] : b->shape[ax + 1];
        int spans = b->shape[ax + 1] == gext;
        int regular = b->strides[ax] == b->strides[ax + 1] * b->shape[ax + 1];
        if (!(spans && regular) || gstride[ax] != w->run)
            break;
        w->run *= (uint64_t)b->shape[ax];
    }
    w->outer = ax + 1;
    for (int k = 0; k < w->outer; k++) {
        w->shape[k] = b->shape[k];
        w->mem_stride[k] = b->strides[k];
        w->glob_stride[k] = gstride[k];
    }
    return VI_OK;
}

vi_status vi_fill(const vi_block *b, const vi_params *params, uint64_t key, uint64_t stream)
{
    walk w;
    vi_plan plan;
    uint64_t total;
    vi_status st;
    w.itemsize = itemsize_of(b->dtype);
    if (!w.itemsize)
        return VI_EINVAL_DTYPE;
    if ((st = vi_plan_prepare(params, &plan)) != VI_OK)
        return st;
    if ((st = describe(b, &w, &total)) != VI_OK)
        return st;
    if (total == 0)
        return VI_OK;
    w.plan = &plan;
    w.kern = vi_active_kernels();
    if (!w.kern)
        return VI_EISA;
    w.key = key;
    w.stream = stream;
    w.data = b->data;
    w.dtype = b->dtype;
    return vi_parallel_for(total, VI_GRAIN, fill_range, &w);
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
    case VI_EINVAL_SHAPE: return "invalid block geometry";
    case VI_ETAIL: return "truncation interval has numerically zero probability";
    case VI_ENOMEM: return "out of memory";
    case VI_EOVERFLOW: return "tensor too large: element index overflows";
    case VI_EISA: return "VARINIT_ISA names an instruction set this machine cannot run";
    }
    return "unknown status";
}
