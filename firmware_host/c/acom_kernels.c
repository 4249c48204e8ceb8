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

/* TFLite's MultiplyByQuantizedMultiplier (x * 2^left, gemmlowp's SaturatingRoundingDoublingHighMul, then its
 * RoundingDivideByPOT) in fewer steps, equal for every x and every multiplier QuantizeMultiplier gives (m >= 0,
 * never INT32_MIN, so the high multiply never saturates): the high multiply's "(ab + nudge) / 2^31, nudge
 * 1 - 2^30 below zero" is floor((ab + 2^30) / 2^31) for either sign, and "x / 2^e rounded half away from zero"
 * is floor((floor((x - [x < 0]) / 2^(e-1)) + 1) / 2). */
typedef struct {
    int32_t m, left, right;  /* the multiplier; 2^shift as a left shift before it or a right shift after it */
} rq_t;

static inline rq_t rq_of(int32_t m, int32_t shift) {
    rq_t r = {m, shift > 0 ? shift : 0, shift > 0 ? 0 : -shift};
    return r;
}

static inline int32_t rq_apply(int32_t x, rq_t r) {
    int32_t a = (int32_t)((uint32_t)x << r.left);  /* int32 wrap, as TFLite's x * (1 << left) */
    int32_t h = (int32_t)(((int64_t)a * r.m + (1 << 30)) >> 31);
    if (r.right == 0) return h;
    int32_t t = (int32_t)((uint32_t)h + (uint32_t)(h >> 31)) >> (r.right - 1);  /* h > INT32_MIN: no wrap */
    return (t >> 1) + (t & 1);
}

static inline int32_t requant(int32_t x, int32_t m, int32_t shift) { return rq_apply(x, rq_of(m, shift)); }

int32_t acom_mbqm(int32_t x, int32_t m, int shift) { return requant(x, m, shift); }

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* working memory of the kernels that need some (one runs at a time), each through its own member: the M4 and
 * M7 fully connected layer's unpacked rows, ADD's input tables */
static union {
    int64_t rows[256];
    int32_t tables[512];
} scratch;

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

/* dot_i8(w, x0, n) and dot_i8(w, x1, n) at once: w unpacked once for two vectors */
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

/* the four sums of w0 and w1 with x0 and x1 at once: each of the four vectors loaded (and unpacked) once */
static void dot22_i8(const int8_t *w0, const int8_t *w1, const int8_t *x0, const int8_t *x1, int32_t n,
                     int32_t acc[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0, k = 0;  /* s<w><x> */
#if defined(__ARM_FEATURE_MVE)
    for (; k + 16 <= n; k += 16) {
        int8x16_t a = vld1q_s8(w0 + k), b = vld1q_s8(w1 + k), p = vld1q_s8(x0 + k), q = vld1q_s8(x1 + k);
        s00 = vmladavaq_s8(s00, a, p);
        s01 = vmladavaq_s8(s01, a, q);
        s10 = vmladavaq_s8(s10, b, p);
        s11 = vmladavaq_s8(s11, b, q);
    }
#endif
#if defined(__ARM_FEATURE_SIMD32)
    for (; k + 4 <= n; k += 4) {
        uint32_t a = word(w0 + k), b = word(w1 + k), p = word(x0 + k), q = word(x1 + k);
        int32_t a0 = __sxtb16((int32_t)a), a1 = sxtb16_ror8(a), b0 = __sxtb16((int32_t)b), b1 = sxtb16_ror8(b);
        int32_t p0 = __sxtb16((int32_t)p), p1 = sxtb16_ror8(p);
        s00 = __smlad(a1, p1, __smlad(a0, p0, s00));
        s10 = __smlad(b1, p1, __smlad(b0, p0, s10));
        int32_t q0 = __sxtb16((int32_t)q), q1 = sxtb16_ror8(q);
        s01 = __smlad(a1, q1, __smlad(a0, q0, s01));
        s11 = __smlad(b1, q1, __smlad(b0, q0, s11));
    }
#endif
    for (; k < n; k++) {
        s00 += w0[k] * x0[k];
        s01 += w0[k] * x1[k];
        s10 += w1[k] * x0[k];
        s11 += w1[k] * x1[k];
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

void acom_strided_copy(const void *in, size_t elem, const int32_t s[4], const int32_t st[4], void *out) {
    uint8_t *dst = out;
    for (int32_t a = 0; a < s[0]; a++)
        for (int32_t b = 0; b < s[1]; b++)
            for (int32_t c = 0; c < s[2]; c++) {
                const int32_t row = a * st[0] + b * st[1] + c * st[2], n = s[3], step = st[3];
                if (step == 1) {  /* a contiguous row */
                    memcpy(dst, (const uint8_t *)in + elem * (size_t)row, elem * (size_t)n);
                } else if (elem == 1) {
                    const uint8_t *src = (const uint8_t *)in + row;
                    for (int32_t d = 0; d < n; d++, src += step) dst[d] = *src;
                } else if (elem == 4) {
                    const uint32_t *src = (const uint32_t *)in + row;
                    uint32_t *to = (uint32_t *)(void *)dst;
                    for (int32_t d = 0; d < n; d++, src += step) to[d] = *src;
                } else {
                    for (int32_t d = 0; d < n; d++)
                        memcpy(dst + elem * (size_t)d, (const uint8_t *)in + elem * (size_t)(row + d * step), elem);
                }
                dst += elem * (size_t)n;
            }
}

void acom_pad_i8(const int8_t *in, const int32_t is[4], const int32_t before[4], const int32_t os[4], int8_t value,
                 int8_t *out) {
    /* row by row along the last axis: the rows outside the input all value, the others value | input | value */
    const int32_t n = os[3], lead = before[3], w = is[3];
    for (int32_t a = 0; a < os[0]; a++)
        for (int32_t b = 0; b < os[1]; b++)
            for (int32_t c = 0; c < os[2]; c++, out += n) {
                int32_t x0 = a - before[0], x1 = b - before[1], x2 = c - before[2];
                if (x0 < 0 || x0 >= is[0] || x1 < 0 || x1 >= is[1] || x2 < 0 || x2 >= is[2]) {
                    memset(out, value, (size_t)n);
                    continue;
                }
                int32_t k0 = lead < 0 ? 0 : lead > n ? n : lead;  /* out[k] = in[k - lead] for k in [k0, k1) */
                int32_t k1 = lead + w < k0 ? k0 : lead + w > n ? n : lead + w;
                memset(out, value, (size_t)k0);
                memcpy(out + k0, in + ((x0 * is[1] + x1) * is[2] + x2) * w + (k0 - lead), (size_t)(k1 - k0));
                memset(out + k1, value, (size_t)(n - k1));
            }
}

void acom_conv_i8(const acom_conv_shape *s, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const int32_t *mult, const int32_t *shift, int32_t out_zp, int32_t act_min, int32_t act_max,
                  int8_t *out) {
    /* VALID: every tap inside the input. With dilation 1 in x, a filter row and the input under it are
     * contiguous: one dot product of k_w * in_c a row. */
    const int32_t tap = s->in_c, row = s->k_w * s->in_c, rows = s->dil_w == 1;
    for (int32_t oc = 0; oc < s->out_c; oc++) {
        const int8_t *f = filter + oc * s->k_h * row;
        for (int32_t oy = 0; oy < s->out_h; oy++)
            for (int32_t ox = 0; ox < s->out_w; ox++) {
                int32_t acc = bias[oc];
                for (int32_t ky = 0; ky < s->k_h; ky++) {
                    int32_t iy = oy * s->stride_h + ky * s->dil_h, ix0 = ox * s->stride_w;
                    const int8_t *w = f + ky * row;
                    if (rows) {
                        acc += dot_i8(w, in + (iy * s->in_w + ix0) * tap, row);
                        continue;
                    }
                    for (int32_t kx = 0; kx < s->k_w; kx++, w += tap)
                        acc += dot_i8(w, in + (iy * s->in_w + ix0 + kx * s->dil_w) * tap, tap);
                }
                acc = requant(acc, mult[oc], shift[oc]) + out_zp;
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

/* Elementwise loops over a 4-D shape with two inputs read through their strides: the three outer indices give
 * the inputs' rows (of type T), the innermost steps along them (the body reads *pa and *pb, writes out[i_]). */
#define FOR4_AB(T, shape, a, as, b, bs, ...)  /* variadic: the body may hold commas */                     \
    do {                                                                                                  \
        const int32_t n0_ = shape[0], n1_ = shape[1], n2_ = shape[2], n3_ = shape[3];                     \
        const int32_t a0_ = as[0], a1_ = as[1], a2_ = as[2], a3_ = as[3];                                 \
        const int32_t b0_ = bs[0], b1_ = bs[1], b2_ = bs[2], b3_ = bs[3];                                 \
        int32_t i_ = 0;                                                                                   \
        for (int32_t p0 = 0; p0 < n0_; p0++)                                                              \
            for (int32_t p1 = 0; p1 < n1_; p1++)                                                          \
                for (int32_t p2 = 0; p2 < n2_; p2++) {                                                    \
                    const T *pa = (a) + p0 * a0_ + p1 * a1_ + p2 * a2_;                                   \
                    const T *pb = (b) + p0 * b0_ + p1 * b1_ + p2 * b2_;                                   \
                    for (int32_t p3 = 0; p3 < n3_; p3++, i_++, pa += a3_, pb += b3_) { __VA_ARGS__; }     \
                }                                                                                         \
    } while (0)

#define FOR4_A(T, shape, a, as, ...)  /* FOR4_AB with one input */                                        \
    do {                                                                                                  \
        const int32_t n0_ = shape[0], n1_ = shape[1], n2_ = shape[2], n3_ = shape[3];                     \
        const int32_t a0_ = as[0], a1_ = as[1], a2_ = as[2], a3_ = as[3];                                 \
        int32_t i_ = 0;                                                                                   \
        for (int32_t p0 = 0; p0 < n0_; p0++)                                                              \
            for (int32_t p1 = 0; p1 < n1_; p1++)                                                          \
                for (int32_t p2 = 0; p2 < n2_; p2++) {                                                    \
                    const T *pa = (a) + p0 * a0_ + p1 * a1_ + p2 * a2_;                                   \
                    for (int32_t p3 = 0; p3 < n3_; p3++, i_++, pa += a3_) { __VA_ARGS__; }                \
                }                                                                                         \
    } while (0)

void acom_mul_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, const int8_t *b,
                 const int32_t bs[4], int32_t b_off, int32_t m, int shift, int32_t out_zp, int32_t act_min,
                 int32_t act_max, int8_t *out) {
    const rq_t r = rq_of(m, shift);
    FOR4_AB(int8_t, shape, a, as, b, bs, {
        int32_t v = out_zp + rq_apply((*pa + a_off) * (*pb + b_off), r);
        out[i_] = (int8_t)clamp(v, act_min, act_max);
    });
}

void acom_add_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, int32_t a_m,
                 int a_shift, const int8_t *b, const int32_t bs[4], int32_t b_off, int32_t b_m, int b_shift,
                 int32_t m, int shift, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
    /* TFLite's int8 ADD: both inputs onto a 2^20 grid first, each a function of its int8 value: 256 entries a
     * side, worked out once a call */
    const int left_shift = 20;
    int32_t *xa = scratch.tables, *xb = xa + 256;
    for (int32_t v = -128; v < 128; v++) {
        xa[v + 128] = requant((v + a_off) * (1 << left_shift), a_m, a_shift);
        xb[v + 128] = requant((v + b_off) * (1 << left_shift), b_m, b_shift);
    }
    xa += 128;
    xb += 128;
    const rq_t r = rq_of(m, shift);
    FOR4_AB(int8_t, shape, a, as, b, bs, {
        out[i_] = (int8_t)clamp(rq_apply(xa[*pa] + xb[*pb], r) + out_zp, act_min, act_max);
    });
}

#define BINARY_F32(expr) FOR4_AB(float, shape, a, as, b, bs, { float x = *pa, y = *pb; out[i_] = (expr); })

void acom_binary_f32(int op, const int32_t shape[4], const float *a, const int32_t as[4], const float *b,
                     const int32_t bs[4], float *out) {
    switch (op) {
        case ACOM_F_ADD: BINARY_F32(x + y); break;
        case ACOM_F_SUB: BINARY_F32(x - y); break;
        case ACOM_F_MUL: BINARY_F32(x * y); break;
        case ACOM_F_DIV: BINARY_F32(x / y); break;
        case ACOM_F_MAX: BINARY_F32(x > y ? x : y); break;
        case ACOM_F_MIN: BINARY_F32(x < y ? x : y); break;
        default: BINARY_F32((x - y) * (x - y)); break;
    }
}

void acom_unary_f32(int op, int32_t n, const float *in, float *out) {
    for (int32_t i = 0; i < n; i++)
        out[i] = op == ACOM_F_ABS ? fabsf(in[i]) : op == ACOM_F_SQRT ? sqrtf(in[i])
               : op == ACOM_F_RSQRT ? 1.f / sqrtf(in[i]) : 1.f / (1.f + expf(-in[i]));
}

void acom_select_f32(const int32_t shape[4], const uint8_t *cond, const int32_t cs[4], const float *x,
                     const int32_t xs[4], const float *y, const int32_t ys[4], float *out) {
    FOR4_AB(float, shape, x, xs, y, ys, {
        out[i_] = cond[(p0 * cs[0] + p1 * cs[1] + p2 * cs[2] + p3 * cs[3])] ? *pa : *pb;
    });
}

void acom_depthwise_i8(const acom_conv_shape *s, int32_t multiplier, const int8_t *in, const int8_t *filter,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t out_zp,
                       int32_t act_min, int32_t act_max, int8_t *out) {
    /* VALID: every tap inside the input; taps step by out_c in the filter, by the dilation in the input */
    const int32_t c = s->in_c, oc_n = s->out_c, kh = s->k_h, kw = s->k_w;
    const int32_t tap_x = s->dil_w * c, tap_y = s->dil_h * s->in_w * c;
    for (int32_t oy = 0; oy < s->out_h; oy++)
        for (int32_t ox = 0; ox < s->out_w; ox++, out += oc_n) {
            const int8_t *x0 = in + (oy * s->stride_h * s->in_w + ox * s->stride_w) * c;
            int32_t oc = 0;
#if defined(__ARM_FEATURE_SIMD32)
            /* the DSP extension: four channels a word; SXTB16 splits input and filter words into channels 0, 2
             * and 1, 3, SMLABB and SMLATT multiply-accumulate each channel's halves */
            for (; multiplier == 1 && c % 4 == 0 && oc + 4 <= oc_n; oc += 4) {
                const int8_t *f = filter + oc, *xy = x0 + oc;
                int32_t a0 = bias[oc], a1 = bias[oc + 1], a2 = bias[oc + 2], a3 = bias[oc + 3];
                for (int32_t ky = 0; ky < kh; ky++, xy += tap_y) {
                    const int8_t *x = xy;
                    for (int32_t kx = 0; kx < kw; kx++, f += oc_n, x += tap_x) {
                        uint32_t fw = word(f), xw = word(x);
                        int32_t fl = __sxtb16((int32_t)fw), xl = __sxtb16((int32_t)xw);
                        int32_t fh = sxtb16_ror8(fw), xh = sxtb16_ror8(xw);
                        a0 = __smlabb(fl, xl, a0);
                        a2 = __smlatt(fl, xl, a2);
                        a1 = __smlabb(fh, xh, a1);
                        a3 = __smlatt(fh, xh, a3);
                    }
                }
                const int32_t acc[4] = {a0, a1, a2, a3};
                for (int32_t j = 0; j < 4; j++) {
                    int32_t v = requant(acc[j], mult[oc + j], shift[oc + j]) + out_zp;
                    out[oc + j] = (int8_t)clamp(v, act_min, act_max);
                }
            }
#endif
            for (; oc < oc_n; oc++) {
                const int8_t *f = filter + oc, *xy = x0 + oc / multiplier;
                int32_t acc = bias[oc];
                for (int32_t ky = 0; ky < kh; ky++, xy += tap_y) {
                    const int8_t *x = xy;
                    for (int32_t kx = 0; kx < kw; kx++, f += oc_n, x += tap_x) acc += *f * *x;
                }
                out[oc] = (int8_t)clamp(requant(acc, mult[oc], shift[oc]) + out_zp, act_min, act_max);
            }
        }
}

static inline int8_t fc_out(int32_t acc, int32_t m, int32_t shift, int32_t out_zp, int32_t lo, int32_t hi) {
    return (int8_t)clamp(requant(acc, m, shift) + out_zp, lo, hi);
}

#if defined(__ARM_FEATURE_SIMD32) && !defined(__ARM_FEATURE_MVE)
/* The DSP extension without Helium (the M4, M7): four input rows sign-extended once into 16-bit pairs, for each
 * 4 bytes the pairs SXTB16 makes (bytes 0 and 2, then 1 and 3) of row 0, 1, 2 and 3 one after another; each
 * weight word, unpacked once, then meets the four rows with one SMLAD a pair. */
#define FC_MAX_IN 256  /* longest row through the 16-bit copy (the scratch: 2 KiB for four rows) */
#define fc_rows scratch.rows  /* per 4 bytes of the rows: 4 x (bytes 0 and 2 | bytes 1 and 3 << 32) */

static void fc_unpack4(const int8_t *x, int32_t stride, int32_t groups) {
    int64_t *d = fc_rows;
    for (int32_t g = 0; g < groups; g++, x += 4)
        for (int32_t j = 0; j < 4; j++, d++) {
            uint32_t p = word(x + j * stride);
            *d = (int64_t)(((uint64_t)(uint32_t)sxtb16_ror8(p) << 32) | (uint32_t)__sxtb16((int32_t)p));
        }
}

#define FC_STEP(s, v) s = __smlad(hi, (int32_t)((v) >> 32), __smlad(lo, (int32_t)(v), s))

/* the sums of w with the four unpacked rows over the first 4 * groups bytes */
static void dot41_unpacked(const int8_t *w, int32_t groups, int32_t acc[4]) {
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const int64_t *x = fc_rows, *end = fc_rows + 4 * groups;
    for (; x != end; x += 4, w += 4) {
        uint32_t a = word(w);
        int32_t lo = __sxtb16((int32_t)a), hi = sxtb16_ror8(a);
        FC_STEP(s0, x[0]);
        FC_STEP(s1, x[1]);
        FC_STEP(s2, x[2]);
        FC_STEP(s3, x[3]);
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}
#endif

void acom_fully_connected_i8(int32_t rows, int32_t in_n, int32_t in_stride, int32_t out_n, const int8_t *in,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int32_t out_zp, int32_t lo, int32_t hi, int8_t *out) {
    int32_t r = 0;
#if defined(__ARM_FEATURE_SIMD32) && !defined(__ARM_FEATURE_MVE)
    const int32_t groups = in_n / 4, tail = groups * 4;
    for (; r + 4 <= rows && in_n <= FC_MAX_IN; r += 4) {  /* four rows an output */
        const int8_t *x = in + r * in_stride;
        fc_unpack4(x, in_stride, groups);
        for (int32_t o = 0; o < out_n; o++) {
            const int8_t *wo = w + o * in_n;
            const int32_t b = bias[o], m = mult[o], sh = shift[o];
            int32_t acc[4];
            dot41_unpacked(wo, groups, acc);
            for (int32_t k = tail; k < in_n; k++)
                for (int32_t j = 0; j < 4; j++) acc[j] += wo[k] * x[j * in_stride + k];
            int8_t *y = out + r * out_n + o;
            y[0] = fc_out(b + acc[0], m, sh, out_zp, lo, hi);
            y[out_n] = fc_out(b + acc[1], m, sh, out_zp, lo, hi);
            y[2 * out_n] = fc_out(b + acc[2], m, sh, out_zp, lo, hi);
            y[3 * out_n] = fc_out(b + acc[3], m, sh, out_zp, lo, hi);
        }
    }
#endif
    for (; r + 2 <= rows; r += 2) {  /* two rows by two outputs a pass: each weight and input word loaded once */
        const int8_t *x0 = in + r * in_stride, *x1 = x0 + in_stride;
        int8_t *y0 = out + r * out_n, *y1 = y0 + out_n;
        int32_t o = 0;
        for (; o + 2 <= out_n; o += 2) {
            int32_t acc[4];
            dot22_i8(w + o * in_n, w + (o + 1) * in_n, x0, x1, in_n, acc);
            y0[o] = fc_out(bias[o] + acc[0], mult[o], shift[o], out_zp, lo, hi);
            y1[o] = fc_out(bias[o] + acc[1], mult[o], shift[o], out_zp, lo, hi);
            y0[o + 1] = fc_out(bias[o + 1] + acc[2], mult[o + 1], shift[o + 1], out_zp, lo, hi);
            y1[o + 1] = fc_out(bias[o + 1] + acc[3], mult[o + 1], shift[o + 1], out_zp, lo, hi);
        }
        for (; o < out_n; o++) {
            int32_t acc0, acc1;
            dot2_i8(w + o * in_n, x0, x1, in_n, &acc0, &acc1);
            y0[o] = fc_out(bias[o] + acc0, mult[o], shift[o], out_zp, lo, hi);
            y1[o] = fc_out(bias[o] + acc1, mult[o], shift[o], out_zp, lo, hi);
        }
    }
    if (r < rows) {  /* the last row: two outputs a pass share its loads */
        const int8_t *x = in + r * in_stride;
        int8_t *y = out + r * out_n;
        int32_t o = 0;
        for (; o + 2 <= out_n; o += 2) {
            int32_t acc0, acc1;
            dot2_i8(x, w + o * in_n, w + (o + 1) * in_n, in_n, &acc0, &acc1);
            y[o] = fc_out(bias[o] + acc0, mult[o], shift[o], out_zp, lo, hi);
            y[o + 1] = fc_out(bias[o + 1] + acc1, mult[o + 1], shift[o + 1], out_zp, lo, hi);
        }
        if (o < out_n) y[o] = fc_out(bias[o] + dot_i8(w + o * in_n, x, in_n), mult[o], shift[o], out_zp, lo, hi);
    }
}

/* roundf(v / scale) + zp into int8 without a library call. q = v / scale is clamped to +-512 first (any value
 * past it clamps to the same int8); then t = trunc(2q), exact, and round-half-away(q) = (t + sign t) / 2 in C's
 * truncating division. */
static inline int8_t quantize1(float v, float scale, int32_t zp) {
    float q = v / scale;
    if (!(q < 512.f && q > -512.f)) q = q > 0.f ? 512.f : -512.f;
    int32_t t = (int32_t)(q + q);
    return (int8_t)clamp((t + (t < 0 ? -1 : 1)) / 2 + zp, -128, 127);
}

void acom_quantize_f32(int32_t n, const float *in, float scale, int32_t zp, int8_t *out) {
    for (int32_t i = 0; i < n; i++) out[i] = quantize1(in[i], scale, zp);
}

void acom_lut_i8(const int32_t shape[4], const int8_t *in, const int32_t is[4], const int8_t table[256],
                 int8_t *out) {
    table += 128;
    FOR4_A(int8_t, shape, in, is, out[i_] = table[*pa]);
}

void acom_lut2_f32(const int32_t shape[4], int op, const int8_t *a, const int32_t as[4], const float ta[256],
                   const int8_t *b, const int32_t bs[4], const float tb[256], float scale, int32_t zp, int8_t *out) {
    ta += 128;
    tb += 128;
    if (op == ACOM_F_MUL)
        FOR4_AB(int8_t, shape, a, as, b, bs, out[i_] = quantize1(ta[*pa] * tb[*pb], scale, zp));
    else if (op == ACOM_F_ADD)
        FOR4_AB(int8_t, shape, a, as, b, bs, out[i_] = quantize1(ta[*pa] + tb[*pb], scale, zp));
    else
        FOR4_AB(int8_t, shape, a, as, b, bs, out[i_] = quantize1(ta[*pa] - tb[*pb], scale, zp));
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
    const rq_t r = rq_of(m, shift);
    for (int32_t i = 0; i < n; i++) out[i] = (int8_t)clamp(rq_apply(in[i] - in_zp, r) + out_zp, -128, 127);
}

void acom_dequantize_i8(const int32_t shape[4], const int8_t *in, const int32_t is[4], int32_t zp, float scale,
                        float *out) {
    FOR4_A(int8_t, shape, in, is, out[i_] = scale * (float)(*pa - zp));
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

/* TFLite Micro's float reference: the window's sum in order, divided by its count (VALID windows) */
void acom_avg_pool_f32(int32_t in_h, int32_t in_w, int32_t c, int32_t k_h, int32_t k_w, int32_t stride_h,
                       int32_t stride_w, int32_t out_h, int32_t out_w, float act_min, float act_max,
                       const float *in, float *out) {
    for (int32_t oy = 0; oy < out_h; oy++)
        for (int32_t ox = 0; ox < out_w; ox++)
            for (int32_t ch = 0; ch < c; ch++) {
                float total = 0.f, count = 0.f;
                for (int32_t ky = 0; ky < k_h; ky++)
                    for (int32_t kx = 0; kx < k_w; kx++) {
                        int32_t iy = oy * stride_h + ky, ix = ox * stride_w + kx;
                        if (iy >= in_h || ix >= in_w) continue;
                        total += in[(iy * in_w + ix) * c + ch];
                        count += 1.f;
                    }
                float v = total / (count > 0.f ? count : 1.f);
                out[(oy * out_w + ox) * c + ch] = v < act_min ? act_min : v > act_max ? act_max : v;
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
    /* four outputs of a row at once share the loads of a; each output still sums its products in order of t */
    for (int32_t i = 0; i < m; i++) {
        const float *ai = a + i * k;
        float *oi = out + i * n;
        int32_t j = 0;
        for (; j + 4 <= n; j += 4) {
            float t0 = 0.f, t1 = 0.f, t2 = 0.f, t3 = 0.f;
            const float *bj = b + j;
            for (int32_t t = 0; t < k; t++, bj += n) {
                float x = ai[t];
                t0 += x * bj[0];
                t1 += x * bj[1];
                t2 += x * bj[2];
                t3 += x * bj[3];
            }
            oi[j] = t0;
            oi[j + 1] = t1;
            oi[j + 2] = t2;
            oi[j + 3] = t3;
        }
        for (; j < n; j++) {
            float total = 0.f;
            for (int32_t t = 0; t < k; t++) total += ai[t] * b[t * n + j];
            oi[j] = total;
        }
    }
}
