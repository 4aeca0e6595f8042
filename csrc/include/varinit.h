/*
 * varinit: the public C API of the fill core.
 *
 * Usable from plain C without Python. Every random value is a pure function of
 * (key, stream, logical index, distribution parameters, dtype): see the
 * random-number contract in DESIGN.md and the README. Functions return a
 * vi_status; nothing here allocates per element or calls back into Python.
 */
#ifndef VARINIT_H
#define VARINIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever any value produced for a given seed changes. */
#define VI_STREAM_VERSION 1

#define VI_MAX_NDIM 64

typedef enum {
    VI_OK = 0,
    VI_EINVAL_DIST = 1,    /* unknown distribution code */
    VI_EINVAL_DTYPE = 2,   /* unknown dtype code */
    VI_EINVAL_PARAM = 3,   /* NaN/negative std, a > b, infinite uniform bound */
    VI_EINVAL_SHAPE = 4,   /* ndim out of range, negative extent, block outside global shape */
    VI_ETAIL = 5,          /* truncation interval has (numerically) zero probability */
    VI_ENOMEM = 6,         /* a worker could not allocate its scratch buffer */
    VI_EOVERFLOW = 7,      /* element count or index overflows 64 bits */
    VI_EISA = 8            /* VARINIT_ISA names no instruction set this machine runs */
} vi_status;

typedef enum { VI_F32 = 0, VI_F64 = 1, VI_F16 = 2, VI_BF16 = 3 } vi_dtype;

typedef enum {
    VI_UNIFORM = 0,      /* p0 = low, p1 = high: values in [low, high) */
    VI_NORMAL = 1,       /* p0 = mean, p1 = std (Box-Muller) */
    VI_TRUNC_NORMAL = 2  /* p0 = mean, p1 = std, p2 = a, p3 = b: absolute bounds (inverse CDF) */
} vi_dist;

typedef struct {
    int dist;     /* a vi_dist */
    double p0, p1, p2, p3;
} vi_params;

/* A block of a (possibly larger, virtual) row-major tensor.
 * data points at the block's logical element [0, ..., 0]; strides are in
 * bytes and may be negative; global_shape and start may be NULL, meaning the
 * block is the whole tensor. Element (i_0, ..., i_{n-1}) of the block gets
 * the value of global logical index ravel(start + i, global_shape). */
typedef struct {
    void *data;
    int dtype;    /* a vi_dtype */
    int ndim;
    const int64_t *shape;
    const int64_t *strides;
    const int64_t *global_shape;
    const int64_t *start;
} vi_block;

/* Fill a block with the distribution, from stream `stream` of key `key`. */
vi_status vi_fill(const vi_block *block, const vi_params *params,
                  uint64_t key, uint64_t stream);

/* Philox4x32-10 (Salmon et al., SC'11): counter and key in, four words out. */
void vi_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The standard normal CDF, computed without libm, so that setup constants are
 * the same bits on every machine. */
double vi_normal_cdf(double x);

/* Mean and variance of N(0, 1) truncated to [alpha, beta]. */
vi_status vi_truncnorm_moments(double alpha, double beta, double *mean, double *var);

/* Largest |z| the normal sampler can return for each floating compute type. */
double vi_normal_max_abs_z(int dtype);

const char *vi_status_message(vi_status s);

#ifdef __cplusplus
}
#endif
#endif /* VARINIT_H */
