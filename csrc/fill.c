/*
 * The layout walker behind vi_fill (api.c): a block of any layout in logical
 * order.
 *
 * The block is seen as `rows` runs of `run` elements that are consecutive in
 * the global row-major index (the innermost axes merged where the block spans
 * them whole and memory allows). A contiguous float32/float64 run is generated
 * in place; anything else (strides, float16, bfloat16) goes through a small
 * buffer. Work is split by element, so any thread count gives the same bits.
 */
#include <string.h>
#include "fill.h"
#include "parallel.h"
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
/* NAME(w, i, n, out): elements i .. i+n-1 of the stream into out (of type T,
 * kernels and reference of suffix SUF, GROUP elements per group). Whole
 * groups go straight to the kernel; a partial group at either end comes from
 * one kernel call into a group-sized scratch buffer or, when only a few of its
 * elements are wanted, from the one-element reference. One definition for both
 * element types, so the float32 and float64 paths cannot drift apart. */
#define VI_DEFINE_GEN(NAME, T, SUF, GROUP)                                                \
    static void NAME(const walk *w, uint64_t i, uint64_t n, T *out)                      \
    {                                                                                   \
        const vi_plan *p = w->plan;                                                     \
        vi_groups_##SUF##_fn kernel = w->kern->SUF[p->dist];                            \
        while (n) {                                                                     \
            uint64_t off = i % (GROUP), take = (GROUP) - off;                           \
            if (off == 0 && n >= (GROUP)) {                                             \
                uint64_t groups = n / (GROUP);                                          \
                kernel(p, w->key, w->stream, i / (GROUP), (size_t)groups, out);         \
                take = groups * (GROUP);                                                \
            } else if (take > n) {                                                      \
                take = n;                                                               \
            }                                                                           \
            if (off != 0 || take < (GROUP)) {                                           \
                if (take < VI_SMALL_PIECE) {                                            \
                    for (uint64_t k = 0; k < take; k++)                                 \
                        out[k] = vi_element_##SUF(p, w->key, w->stream, i + k);         \
                } else {                                                                \
                    T tmp[GROUP];                                                       \
                    kernel(p, w->key, w->stream, i / (GROUP), 1, tmp);                  \
                    memcpy(out, tmp + off, take * sizeof(T));                           \
                }                                                                       \
            }                                                                           \
            i += take; out += take; n -= take;                                          \
        }                                                                               \
    }

VI_DEFINE_GEN(gen_f64, double, f64, VI_GROUP_F64)
VI_DEFINE_GEN(gen_f32_in_f32, float, f32, VI_GROUP_F32)

/* float32 outputs: computed in float32, or in float64 and rounded when the plan
 * asks for it (a truncation interval too far out for float32 probabilities). */
static void gen_f32(const walk *w, uint64_t i, uint64_t n, float *out)
{
    if (!w->plan->compute64) {
        gen_f32_in_f32(w, i, n, out);
        return;
    }
    double tmp[VI_BUFFER];
    while (n) {
        uint64_t take = n < VI_BUFFER ? n : VI_BUFFER;
        gen_f64(w, i, take, tmp);
        for (uint64_t k = 0; k < take; k++)
            out[k] = (float)tmp[k];
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

int vi_itemsize(int dtype)
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

vi_status vi_walk_fill(const vi_block *b, const vi_plan *plan, uint64_t key, uint64_t stream)
{
    walk w;
    uint64_t total;
    vi_status st;
    w.itemsize = vi_itemsize(b->dtype);
    if (!w.itemsize)
        return VI_EINVAL_DTYPE;
    if ((st = describe(b, &w, &total)) != VI_OK)
        return st;
    if (total == 0)
        return VI_OK;
    w.plan = plan;
    w.kern = vi_active_kernels();
    if (!w.kern)
        return VI_EISA;
    w.key = key;
    w.stream = stream;
    w.data = b->data;
    w.dtype = b->dtype;
    return vi_parallel_for(total, VI_GRAIN, fill_range, &w);
}
