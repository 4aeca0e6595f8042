/* Portable kernels: the reference every SIMD path must match bit for bit. */
#include "kernels.h"
#include "../dist/sample.h"

static void lane_words(uint64_t key, uint64_t stream, uint64_t g, uint32_t words[16][4])
{
    for (uint32_t l = 0; l < 16; l++)
        vi_philox_block(key, stream, 16u * g + l, words[l]);
}

static void uniform_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, float *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t w = 0; w < 4; w++)
            for (uint32_t l = 0; l < 16; l++)
                out[16 * w + l] = vi_uniform_f32(p, wd[l][w]);
    }
}

static void normal_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, float *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t h = 0; h < 2; h++)
            for (uint32_t l = 0; l < 16; l++) {
                float r = vi_bm_radius_f32(wd[l][2 * h]), s, c;
                vi_sincos_turn_f32(wd[l][2 * h + 1], &s, &c);
                out[32 * h + l] = p->lo_f + p->scale_f * (r * c);
                out[32 * h + 16 + l] = p->lo_f + p->scale_f * (r * s);
            }
    }
}

static void trunc_f32(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, float *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F32) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t w = 0; w < 4; w++)
            for (uint32_t l = 0; l < 16; l++)
                out[16 * w + l] = vi_trunc_f32(p, wd[l][w]);
    }
}

static uint64_t word64(const uint32_t w[4], uint32_t h)
{
    return ((uint64_t)w[2 * h + 1] << 32) | w[2 * h];
}

static void uniform_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, double *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t h = 0; h < 2; h++)
            for (uint32_t l = 0; l < 16; l++)
                out[16 * h + l] = vi_uniform_f64(p, word64(wd[l], h));
    }
}

static void normal_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, double *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t l = 0; l < 16; l++) {
            double r = vi_bm_radius_f64(word64(wd[l], 0)), s, c;
            vi_sincos_turn_f64(word64(wd[l], 1), &s, &c);
            out[l] = p->lo_d + p->scale_d * (r * c);
            out[16 + l] = p->lo_d + p->scale_d * (r * s);
        }
    }
}

static void trunc_f64(const vi_plan *p, uint64_t key, uint64_t stream, uint64_t g0, size_t n, double *out)
{
    uint32_t wd[16][4];
    for (size_t g = 0; g < n; g++, out += VI_GROUP_F64) {
        lane_words(key, stream, g0 + g, wd);
        for (uint32_t h = 0; h < 2; h++)
            for (uint32_t l = 0; l < 16; l++)
                out[16 * h + l] = vi_trunc_f64(p, word64(wd[l], h));
    }
}

const vi_kernels vi_kernels_scalar = {
    "scalar",
    {uniform_f32, normal_f32, trunc_f32},
    {uniform_f64, normal_f64, trunc_f64},
};
