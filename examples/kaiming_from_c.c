/*
 * kaiming_normal_ from C alone: varinit's core without Python.
 *
 * Fills the weight of a 3x3 convolution with 64 input and 128 output channels,
 * float32, (C_out, C_in, kH, kW) = (128, 64, 3, 3), with He et al.'s normal
 * for ReLU: std = gain / sqrt(fan_in), gain = sqrt(2). Seed 42, stream 0 are
 * what the Python call varinit.kaiming_normal_(w, nonlinearity="relu",
 * generator=42) uses, so both give the same bits.
 *
 * Build and run: `make -C csrc/tests example`, or compile this file with every
 * .c file of csrc, csrc/dist and csrc/simd except csrc/_module.c (the Python
 * module), with -Icsrc/include -pthread -lm and the core's floating-point
 * flags -ffp-contract=off -fno-math-errno (never -ffast-math): they keep the
 * values the same bits as every other build.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <varinit.h>

static int fail(const char *what, vi_status st)
{
    fprintf(stderr, "kaiming_from_c: %s: %s\n", what, vi_status_message(st));
    return 1;
}

int main(void)
{
    enum { C_OUT = 128, C_IN = 64, KH = 3, KW = 3, N = C_OUT * C_IN * KH * KW };
    const int64_t shape[4] = {C_OUT, C_IN, KH, KW};

    /* fans: layer "conv" (groups 1 here; groups, stride, blocks and axes are
     * in vi_fan_spec) */
    vi_fan_spec spec = {.layer = VI_LAYER_CONV, .groups = 1};
    double fan_in, fan_out;
    vi_status st = vi_fans(4, shape, &spec, &fan_in, &fan_out);
    if (st != VI_OK)
        return fail("vi_fans", st);

    /* the std, as varinit.kaiming_normal_ computes it: gain / sqrt(fan).
     * Other rules from the same fans: xavier_normal_ std = gain * sqrt(2 /
     * (fan_in + fan_out)), kaiming_uniform_ bound = sqrt(3) * std. */
    double gain = sqrt(2.0); /* ReLU; leaky ReLU with slope a: sqrt(2 / (1 + a^2)) */
    double std = gain / sqrt(fan_in);

    float *w = malloc(N * sizeof *w);
    if (!w)
        return 1;
    /* the whole tensor: contiguous row-major strides in bytes */
    const int64_t strides[4] = {C_IN * KH * KW * 4, KH * KW * 4, KW * 4, 4};
    vi_block block = {w, VI_F32, 4, shape, strides, NULL, NULL};
    vi_params normal = {VI_NORMAL, 0.0, std, 0.0, 0.0};
    uint64_t key = 42, stream = 0;
    st = vi_fill(&block, &normal, key, stream);
    if (st != VI_OK) {
        free(w);
        return fail("vi_fill", st);
    }

    double sum = 0, sum2 = 0;
    for (int i = 0; i < N; i++) {
        sum += w[i];
        sum2 += (double)w[i] * w[i];
    }
    double mean = sum / N, sample_std = sqrt(sum2 / N - mean * mean);
    printf("kaiming_from_c: conv weight (%d, %d, %d, %d), kernels %s, %d threads\n", C_OUT, C_IN,
           KH, KW, vi_isa(), vi_get_num_threads());
    printf("  fan_in %.0f, fan_out %.0f, std %.9g\n", fan_in, fan_out, std);
    printf("  w[0..3] = %.9g %.9g %.9g %.9g\n", w[0], w[1], w[2], w[3]);
    printf("  sample mean %.5f, sample std %.6f (%.4f of the target)\n", mean, sample_std,
           sample_std / std);
    free(w);
    /* 73728 samples: the sample std is within 1% of the target with near certainty */
    return fabs(sample_std / std - 1.0) < 0.01 && fabs(mean) < 0.01 * std ? 0 : 1;
}
