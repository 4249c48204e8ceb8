/* The edge graph's kernels on the device, in TFLite's integer arithmetic (the reference kernels TFLite Micro
 * runs: gemmlowp's rounding high multiply and rounding right shift) and plain float. Written by hand: no
 * library fits here (TFLite Micro's sources are not on the package registries). export/c_graph.py turns an
 * exported edge_int8.tflite into a C file of calls to these, with every shape, stride and multiplier worked
 * out ahead; shapes are 4-D (leading 1s added), tensors dense and row-major. */
#ifndef ACOM_KERNELS_H
#define ACOM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* TFLite's MultiplyByQuantizedMultiplier: x * m * 2^shift / 2^31, rounded as TFLite Micro rounds. */
int32_t acom_mbqm(int32_t x, int32_t m, int shift);

/* out[i] = in[sum_k i_k * strides[k]] over the 4-D out shape: transposes, and PAD's inner copy */
void acom_strided_copy(const void *in, size_t elem, const int32_t out_shape[4], const int32_t strides[4], void *out);
void acom_pad_i8(const int8_t *in, const int32_t in_shape[4], const int32_t before[4], const int32_t out_shape[4],
                 int8_t value, int8_t *out);

/* NHWC convolution, VALID padding (what the exporter emits), per-channel int8 or float32. In the int8 kernels
 * (convolution, depthwise, fully connected) `bias` holds bias + input offset * the output channel's weight sum,
 * summed at export (sum w (x + offset) + bias = sum w x + that), and `mult`, `shift` the fixed-point multiplier of
 * each output channel. */
typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w;
} acom_conv_shape;
void acom_conv_i8(const acom_conv_shape *s, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const int32_t *mult, const int32_t *shift, int32_t out_zp, int32_t act_min, int32_t act_max,
                  int8_t *out);
void acom_conv_f32(const acom_conv_shape *s, const float *in, const float *filter, const float *bias,
                   float act_min, float act_max, float *out);

/* elementwise with broadcasting: a and b read through their 4-D strides (0 along a broadcast axis) */
void acom_mul_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, const int8_t *b,
                 const int32_t bs[4], int32_t b_off, int32_t m, int shift, int32_t out_zp, int32_t act_min,
                 int32_t act_max, int8_t *out);
void acom_add_i8(const int32_t shape[4], const int8_t *a, const int32_t as[4], int32_t a_off, int32_t a_m,
                 int a_shift, const int8_t *b, const int32_t bs[4], int32_t b_off, int32_t b_m, int b_shift,
                 int32_t m, int shift, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out);
enum { ACOM_F_ADD, ACOM_F_SUB, ACOM_F_MUL, ACOM_F_DIV, ACOM_F_MAX, ACOM_F_MIN, ACOM_F_SQDIFF };
void acom_binary_f32(int op, const int32_t shape[4], const float *a, const int32_t as[4], const float *b,
                     const int32_t bs[4], float *out);
enum { ACOM_F_ABS, ACOM_F_SQRT, ACOM_F_RSQRT, ACOM_F_LOGISTIC };
/* out = cond ? x : y, broadcast (SELECT_V2) */
void acom_select_f32(const int32_t shape[4], const uint8_t *cond, const int32_t cs[4], const float *x,
                     const int32_t xs[4], const float *y, const int32_t ys[4], float *out);
void acom_unary_f32(int op, int32_t n, const float *in, float *out);

/* depthwise NHWC, VALID, per-channel int8; filter [1, k_h, k_w, out_c], out_c = in_c * multiplier */
void acom_depthwise_i8(const acom_conv_shape *s, int32_t multiplier, const int8_t *in, const int8_t *filter,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t out_zp,
                       int32_t act_min, int32_t act_max, int8_t *out);
/* out[r, o] = in[r * in_stride, + in_n] . w[o, :] + bias[o], rows x in_n -> rows x out_n (in_stride: in_n for
 * dense rows; stride * in_c for a convolution of one input row, whose windows overlap) */
void acom_fully_connected_i8(int32_t rows, int32_t in_n, int32_t in_stride, int32_t out_n, const int8_t *in,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out);
void acom_quantize_f32(int32_t n, const float *in, float scale, int32_t zp, int8_t *out);
/* a float island of one int8 input as its table (export/c_islands.py): out = table[in + 128], in read through
 * its 4-D strides */
void acom_lut_i8(const int32_t shape[4], const int8_t *in, const int32_t is[4], const int8_t table[256],
                 int8_t *out);
/* an island of two int8 inputs: out = QUANTIZE(ta[a + 128] op tb[b + 128]), op ACOM_F_MUL, ACOM_F_ADD or ACOM_F_SUB */
void acom_lut2_f32(const int32_t shape[4], int op, const int8_t *a, const int32_t as[4], const float ta[256],
                   const int8_t *b, const int32_t bs[4], const float tb[256], float scale, int32_t zp, int8_t *out);
/* [outer, n] -> softmax over n */
void acom_softmax_f32(int32_t outer, int32_t n, float beta, const float *in, float *out);
void acom_mean_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, float *out);
/* out[b] = a[b] @ c[b] for b < batch; a [m, k], c [k, n] at the given strides between batches (0: shared) */
void acom_batch_matmul_f32(int32_t batch, int32_t m, int32_t k, int32_t n, const float *a, int32_t a_stride,
                           const float *c, int32_t c_stride, float *out);
void acom_requantize_i8(int32_t n, const int8_t *in, int32_t in_zp, int32_t m, int shift, int32_t out_zp, int8_t *out);
void acom_dequantize_i8(const int32_t shape[4], const int8_t *in, const int32_t is[4], int32_t zp, float scale,
                        float *out);
void acom_avg_pool_i8(int32_t in_h, int32_t in_w, int32_t c, int32_t k_h, int32_t k_w, int32_t stride_h,
                      int32_t stride_w, int32_t out_h, int32_t out_w, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out);
void acom_avg_pool_f32(int32_t in_h, int32_t in_w, int32_t c, int32_t k_h, int32_t k_w, int32_t stride_h,
                       int32_t stride_w, int32_t out_h, int32_t out_w, float act_min, float act_max,
                       const float *in, float *out);
/* [outer, axis, inner] -> [outer, inner] */
void acom_sum_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, float *out);
void acom_arg_max_f32(int32_t outer, int32_t axis, int32_t inner, const float *in, int32_t *out);
/* out[M, N] = a[M, K] @ b[K, N] */
void acom_matmul_f32(int32_t m, int32_t k, int32_t n, const float *a, const float *b, float *out);

#endif
