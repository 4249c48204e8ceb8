/* See acom_kernels.h. Integer kernels follow TFLite's reference_integer_ops arithmetic step by step, so that
 * their int8 outputs equal TFLite Micro's; float kernels sum in the reference kernels' order. */
#include "acom_kernels.h"

#include <math.h>
#include <string.h>
#if defined(__ARM_FEATURE_MVE)
#include <arm_mve.h>
#endif
#if defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#endif

static int32_t high_mul(int32_t a, int32_t b) { /* gemmlowp SaturatingRoundingDoublingHighMul */
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t shift_right(int32_t x, int exponent) { /* gemmlowp RoundingDivideByPOT: ties away from zero */
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + ((x & mask) > threshold ? 1 : 0);
}

int32_t acom_mbqm(int32_t x, int32_t m, int shift) {
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return shift_right(high_mul((int32_t)((int64_t)x * ((int64_t)1 << left)), m), right);
}

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* sum of a[k] * b[k] for k < n. Integer sums are exact in any order, so the Cortex-M paths (Helium's
 * VMLADAVA: 16 products at once on the M55; the DSP extension's SMLAD: two 16-bit products, from int8 pairs
 * sign-extended by SXTB16, bytes 0 and 2, then 1 and 3) give what the plain loop gives. */
#if defined(__ARM_FEATURE_SIMD32)
static uint32_t word(const int8_t *p) {  /* an unaligned word load (the M4, M7 and M55 allow them); the builtin
                                            stays inline under -ffreestanding, where a memcpy call would not */
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

static int32_t sxtb16_ror8(uint32_t v) {  /* bytes 1 and 3 sign-extended: SXTB16 with its rotation (GCC 12 does
                                             not fold a separate rotate into it) */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

static int32_t dot_i8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0, k = 0;
#if defined(__ARM_FEATURE_MVE)  /* Helium (the M55): 16 products summed by one VMLADAVA */
    for (; k + 16 <= n; k += 16) acc = vmladavaq_s8(acc, vld1q_s8(a + k), vld1q_s8(b + k));
#endif
#if defined(__ARM_FEATURE_SIMD32)
    for (; k + 4 <= n; k += 4) {
        uint32_t x = word(a + k), y = word(b + k);
        acc = __smlad(__sxtb16((int32_t)x), __sxtb16((int32_t)y), acc);
        acc = __smlad(sxtb16_ror8(x), sxtb16_ror8(y), acc);
    }
#endif
    for (; k < n; k++) acc += a[k] * b[k];
    return acc;
}

/* dot_i8(w, x0, n) and dot_i8(w, x1, n) at once: w unpacked once for two rows */
static void dot2_i8(const int8_t *w, const int8_t *x0, const int8_t *x1, int32_t n, int32_t *acc0, int32_t *acc1) {
    int32_t s0 = 0, s1 = 0, k = 0;
#if defined(__ARM_FEATURE_MVE)
    for (; k + 16 <= n; k += 16) {
        int8x16_t v = vld1q_s8(w + k);
        s0 = vmladavaq_s8(s0, v, vld1q_s8(x0 + k));
        s1 = vmladavaq_s8(s1, v, vld1q_s8(x1 + k));
    }
#endif
#if defined(__ARM_FEATURE_SIMD32)
    for (; k + 4 <= n; k += 4) {
        uint32_t v = word(w + k), p = word(x0 + k), q = word(x1 + k);
        int32_t lo = __sxtb16((int32_t)v), hi = sxtb16_ror8(v);
        s0 = __smlad(hi, sxtb16_ror8(p), __smlad(lo, __sxtb16((int32_t)p), s0));
        s1 = __smlad(hi, sxtb16_ror8(q), __smlad(lo, __sxtb16((int32_t)q), s1));
    }
#endif
    for (; k < n; k++) {
        s0 += w[k] * x0[k];
        s1 += w[k] * x1[k];
    }
    *acc0 = s0;
    *acc1 = s1;
}

static int32_t sum_i8(const int8_t *a, int32_t n) {
    int32_t acc = 0;
    for (int32_t k = 0; k < n; k++) acc += a[k];
    return acc;
}

void acom_strided_copy(const void *in, size_t elem, const int32_t s[4], const int32_t st[4], void *out) {
    const uint8_t *src = in;
    uint8_t *dst = out;
    for (int32_t a = 0; a < s[0]; a++)
        for (int32_t b = 0; b < s[1]; b++)
            for (int32_t c = 0; c < s[2]; c++)
                for (int32_t d = 0; d < s[3]; d++, dst += elem)
                    memcpy(dst, src + elem * (size_t)(a * st[0] + b * st[1] + c * st[2] + d * st[3]), elem);
}

void acom_pad_i8(const int8_t *in, const int32_t is[4], const int32_t before[4], const int32_t os[4], int8_t value,
                 int8_t *out) {
    int32_t i = 0;
    for (int32_t a = 0; a < os[0]; a++)
        for (int32_t b = 0; b < os[1]; b++)
            for (int32_t c = 0; c < os[2]; c++)
                for (int32_t d = 0; d < os[3]; d++, i++) {
                    int32_t x[4] = {a - before[0], b - before[1], c - before[2], d - before[3]};
                    int inside = 1;
                    for (int k = 0; k < 4; k++) inside &= x[k] >= 0 && x[k] < is[k];
                    out[i] = inside ? in[((x[0] * is[1] + x[1]) * is[2] + x[2]) * is[3] + x[3]] : value;
                }
}

void acom_conv_i8(const acom_conv_shape *s, const int8_t *in, int32_t in_offset, const int8_t *filter,
                  const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t out_zp, int32_t act_min,
                  int32_t act_max, int8_t *out) {
    /* sum w (x + offset) = sum w x + offset sum w, with sum w over the taps inside the input (all of them but at
     * the edges of a padded input: the filter's sum, once per output channel). With dilation 1 in x, a filter row
     * and the input under it are contiguous: one dot product of k_w * in_c a row. */
    const int32_t tap = s->in_c, row = s->k_w * s->in_c, rows = s->dil_w == 1;
    for (int32_t oc = 0; oc < s->out_c; oc++) {
        const int8_t *f = filter + oc * s->k_h * row;
        const int32_t fsum = sum_i8(f, s->k_h * row);
        for (int32_t oy = 0; oy < s->out_h; oy++)
            for (int32_t ox = 0; ox < s->out_w; ox++) {
                int32_t acc = 0, wsum = fsum;
                for (int32_t ky = 0; ky < s->k_h; ky++) {
                    int32_t iy = oy * s->stride_h + ky * s->dil_h, ix0 = ox * s->stride_w;
                    const int8_t *w = f + ky * row;
                    if (rows && iy >= 0 && iy < s->in_h && ix0 >= 0 && ix0 + s->k_w <= s->in_w) {
                        acc += dot_i8(w, in + (iy * s->in_w + ix0) * tap, row);
                        continue;
                    }
                    for (int32_t kx = 0; kx < s->k_w; kx++, w += tap) {
                        int32_t ix = ix0 + kx * s->dil_w;
                        if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) {
                            wsum -= sum_i8(w, tap);
                            continue;
                        }
                        acc += dot_i8(w, in + (iy * s->in_w + ix) * tap, tap);
                    }
                }
                acc += in_offset * wsum;
                if (bias) acc += bias[oc];
                acc = acom_mbqm(acc, mult[oc], shift[oc]) + out_zp;
                out[(oy * s->out_w + ox) * s->out_c + oc] = (int8_t)clamp(acc, act_min, act_max);
            }
    }
}

void acom_conv_f32(const acom_conv_shape *s, const float *in, const float *filter, const float *bias, float act_min,
                   float act_max, float *out) {
    for (int32_t oy = 0; oy < s->out_h; oy++)
        for (int32_t ox = 0; ox < s->out_w; ox++)
            for (int32_t oc = 0; oc < s->out_c; oc++) {
                float total = 0.f;
                for (int32_t ky = 0; ky < s->k_h; ky++)
                    for (int32_t kx = 0; kx < s->k_w; kx++) {
                        int32_t iy = oy * s->stride_h + ky * s->dil_h, ix = ox * s->stride_w + kx * s->dil_w;
                        if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) continue;
                        const float *x = in + (iy * s->in_w + ix) * s->in_c;
                        const float *w = filter + ((oc * s->k_h + ky) * s->k_w + kx) * s->in_c;
                        for (int32_t ic = 0; ic < s->in_c; ic++) total += x[ic] * w[ic];
                    }
                float v = total + (bias ? bias[oc] : 0.f);
                out[(oy * s->out_w + ox) * s->out_c + oc] = v < act_min ? act_min : v > act_max ? act_max : v;
            }
}

#define FOR4(shape, ...)  /* variadic: the body may hold commas */  \
    do {                                                           \
        int32_t i_ = 0;                                            \
        for (int32_t p0 = 0; p0 < shape[0]; p0++)                  \
            for (int32_t p1 = 0; p1 < shape[1]; p1++)              \
                for (int32_t p2 = 0; p2 < shape[2]; p2++)          \
                    for (int32_t p3 = 0; p3 < shape[3]; p3++, i_++) { __VA_ARGS__; } \
    } while (0)
#define AT(st) (p0 * st[0] + p1 * st[1] + p2 * st[2] + p3 * st[3])

void acom_mul_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, const int8_t *b,
                 const int32_t bs[4], int32_t b_off, int32_t m, int shift, int32_t out_zp, int32_t act_min,
                 int32_t act_max, int8_t *out) {
    FOR4(shape, {
        int32_t v = out_zp + acom_mbqm((a[AT(as)] + a_off) * (b[AT(bs)] + b_off), m, shift);
        out[i_] = (int8_t)clamp(v, act_min, act_max);
    });
}

void acom_add_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, int32_t a_m,
                 int a_shift, const int8_t *b, const int32_t bs[4], int32_t b_off, int32_t b_m, int b_shift,
                 int32_t m, int shift, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
    const int left_shift = 20; /* TFLite's int8 ADD: both inputs onto a 2^20 grid first */
    FOR4(shape, {
        int32_t x = acom_mbqm((a[AT(as)] + a_off) * (1 << left_shift), a_m, a_shift);
        int32_t y = acom_mbqm((b[AT(bs)] + b_off) * (1 << left_shift), b_m, b_shift);
        out[i_] = (int8_t)clamp(acom_mbqm(x + y, m, shift) + out_zp, act_min, act_max);
    });
}

void acom_binary_f32(int op, const int32_t shape[4], const float *a, const int32_t as[4], const float *b,
                     const int32_t bs[4], float *out) {
    FOR4(shape, {
        float x = a[AT(as)], y = b[AT(bs)];
        out[i_] = op == ACOM_F_ADD ? x + y : op == ACOM_F_SUB ? x - y : op == ACOM_F_MUL ? x * y
                : op == ACOM_F_DIV ? x / y : op == ACOM_F_MAX ? (x > y ? x : y) : op == ACOM_F_MIN ? (x < y ? x : y)
                : (x - y) * (x - y);
    });
}

void acom_unary_f32(int op, int32_t n, const float *in, float *out) {
    for (int32_t i = 0; i < n; i++)
        out[i] = op == ACOM_F_ABS ? fabsf(in[i]) : op == ACOM_F_SQRT ? sqrtf(in[i])
               : op == ACOM_F_RSQRT ? 1.f / sqrtf(in[i]) : 1.f / (1.f + expf(-in[i]));
}

void acom_select_f32(const int32_t shape[4], const uint8_t *cond, const int32_t cs[4], const float *x,
                     const int32_t xs[4], const float *y, const int32_t ys[4], float *out) {
    FOR4(shape, out[i_] = cond[AT(cs)] ? x[AT(xs)] : y[AT(ys)]);
}

void acom_depthwise_i8(const acom_conv_shape *s, int32_t multiplier, const int8_t *in, int32_t in_offset,
                       const int8_t *filter, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
    for (int32_t oy = 0; oy < s->out_h; oy++)
        for (int32_t ox = 0; ox < s->out_w; ox++)
            for (int32_t oc = 0; oc < s->out_c; oc++) {
                int32_t ic = oc / multiplier, acc = 0;
                for (int32_t ky = 0; ky < s->k_h; ky++)
                    for (int32_t kx = 0; kx < s->k_w; kx++) {
                        int32_t iy = oy * s->stride_h + ky * s->dil_h, ix = ox * s->stride_w + kx * s->dil_w;
                        if (iy < 0 || iy >= s->in_h || ix < 0 || ix >= s->in_w) continue;
                        acc += filter[(ky * s->k_w + kx) * s->out_c + oc] * (in[(iy * s->in_w + ix) * s->in_c + ic] + in_offset);
                    }
                if (bias) acc += bias[oc];
                acc = acom_mbqm(acc, mult[oc], shift[oc]) + out_zp;
                out[(oy * s->out_w + ox) * s->out_c + oc] = (int8_t)clamp(acc, act_min, act_max);
            }
}

void acom_fully_connected_i8(int32_t rows, int32_t in_n, int32_t out_n, const int8_t *in, int32_t in_offset,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int per_channel, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
    for (int32_t o = 0; o < out_n; o++) {  /* sum w (x + offset) = sum w x + offset sum w, the sum once a row of w */
        const int8_t *wo = w + o * in_n;
        int32_t base = in_offset * sum_i8(wo, in_n) + (bias ? bias[o] : 0);
        int c = per_channel ? o : 0;
        for (int32_t r = 0; r < rows; r += 2) {  /* two rows a pass share the loads of w */
            int32_t acc[2];
            if (r + 1 < rows) {
                dot2_i8(wo, in + r * in_n, in + (r + 1) * in_n, in_n, &acc[0], &acc[1]);
            } else {
                acc[0] = dot_i8(wo, in + r * in_n, in_n);
            }
            for (int32_t j = 0; j < 2 && r + j < rows; j++)
                out[(r + j) * out_n + o] =
                    (int8_t)clamp(acom_mbqm(base + acc[j], mult[c], shift[c]) + out_zp, act_min, act_max);
        }
    }
}

void acom_quantize_f32(int32_t n, const float *in, float scale, int32_t zp, int8_t *out) {
    for (int32_t i = 0; i < n; i++) out[i] = (int8_t)clamp((int32_t)roundf(in[i] / scale) + zp, -128, 127);
}

void acom_softmax_f32(int32_t outer, int32_t n, float beta, const float *in, float *out) {
    for (int32_t o = 0; o < outer; o++) {
        const float *x = in + o * n;
        float *y = out + o * n, max = x[0], sum = 0.f;
        for (int32_t i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
        for (int32_t i = 0; i < n; i++) sum += (y[i] = expf((x[i] - max) * beta));
        for (int32_t i = 0; i < n; i++) y[i] /= sum;
    }
}

void acom_mean_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, float *out) {
    acom_sum_f32(outer, axis, inner, in, out);
    for (int32_t i = 0; i < outer * inner; i++) out[i] /= (float)axis;
}

void acom_batch_matmul_f32(int32_t batch, int32_t m, int32_t k, int32_t n, const float *a, int32_t a_stride,
                           const float *c, int32_t c_stride, float *out) {
    for (int32_t b = 0; b < batch; b++) acom_matmul_f32(m, k, n, a + b * a_stride, c + b * c_stride, out + b * m * n);
}

void acom_requantize_i8(int32_t n, const int8_t *in, int32_t in_zp, int32_t m, int shift, int32_t out_zp, int8_t *out) {
    for (int32_t i = 0; i < n; i++) out[i] = (int8_t)clamp(acom_mbqm(in[i] - in_zp, m, shift) + out_zp, -128, 127);
}

void acom_dequantize_i8(int32_t n, const int8_t *in, int32_t zp, float scale, float *out) {
    for (int32_t i = 0; i < n; i++) out[i] = scale * (float)(in[i] - zp);
}

void acom_avg_pool_i8(int32_t in_h, int32_t in_w, int32_t c, int32_t k_h, int32_t k_w, int32_t stride_h,
                      int32_t stride_w, int32_t out_h, int32_t out_w, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out) {
    for (int32_t oy = 0; oy < out_h; oy++)
        for (int32_t ox = 0; ox < out_w; ox++)
            for (int32_t ch = 0; ch < c; ch++) {
                int32_t acc = 0, count = 0;
                for (int32_t ky = 0; ky < k_h; ky++)
                    for (int32_t kx = 0; kx < k_w; kx++) {
                        int32_t iy = oy * stride_h + ky, ix = ox * stride_w + kx;
                        if (iy >= in_h || ix >= in_w) continue;
                        acc += in[(iy * in_w + ix) * c + ch];
                        count++;
                    }
                if (count == 0) count = 1;
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(oy * out_w + ox) * c + ch] = (int8_t)clamp(acc, act_min, act_max);
            }
}

void acom_sum_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, float *out) {
    for (int32_t o = 0; o < outer; o++)
        for (int32_t i = 0; i < inner; i++) {
            float total = 0.f;
            for (int32_t k = 0; k < axis; k++) total += in[(o * axis + k) * inner + i];
            out[o * inner + i] = total;
        }
}

void acom_arg_max_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, int32_t *out) {
    for (int32_t o = 0; o < outer; o++)
        for (int32_t i = 0; i < inner; i++) {
            int32_t best = 0;
            for (int32_t k = 1; k < axis; k++)
                if (in[(o * axis + k) * inner + i] > in[(o * axis + best) * inner + i]) best = k;
            out[o * inner + i] = best;
        }
}

void acom_matmul_f32(int32_t m, int32_t k, int32_t n, const float *a, const float *b, float *out) {
    for (int32_t i = 0; i < m; i++)
        for (int32_t j = 0; j < n; j++) {
            float total = 0.f;
            for (int32_t t = 0; t < k; t++) total += a[i * k + t] * b[t * n + j];
            out[i * n + j] = total;
        }
}
