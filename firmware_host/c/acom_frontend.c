/* See acom_frontend.h. */
#include "acom_frontend.h"

#include <math.h>

/* z[b] = z[a] - w z[b], z[a] = z[a] + w z[b] for complex values held in x (a) and y (b) */
#define BUTTERFLY(xr, xi, yr, yi, wr, wi)                                       \
    do {                                                                        \
        const float tr_ = yr * (wr) - yi * (wi), ti_ = yr * (wi) + yi * (wr);   \
        yr = xr - tr_;                                                          \
        yi = xi - ti_;                                                          \
        xr = xr + tr_;                                                          \
        xi = xi + ti_;                                                          \
    } while (0)

/* In-place radix-2 FFT of m complex values z (re, im interleaved) given in bit-reversed order, m a power of two,
 * m <= n_fft: the stage of length len pairs z[i] and z[i + len / 2] with twiddle e^{-2 pi i k / len}, the table's
 * entry k * n_fft / len (k = i mod len / 2). Stages go two at a time: the four values two stages of one k
 * touch are loaded once, pass through both stages' butterflies (the same operations as one stage after the
 * other) and are stored once. */
static void fft(const acom_frontend *f, int32_t m, float *z) {
    int32_t len = 2;
    if ((m & 0x55555555) == 0) {  /* an odd number of stages: the first (twiddle 1) alone */
        for (float *a = z, *end = z + 2 * m; a != end; a += 4) {
            float xr = a[0], xi = a[1], yr = a[2], yi = a[3];
            a[0] = xr + yr;
            a[1] = xi + yi;
            a[2] = xr - yr;
            a[3] = xi - yi;
        }
        len = 4;
    }
    for (; len <= m / 2; len *= 4) {  /* stages len and 2 len */
        const int32_t half = len / 2, s1 = f->n_fft / len, s2 = s1 / 2;
        for (int32_t k = 0; k < half; k++) {
            const float w1r = f->cos_table[k * s1], w1i = -f->sin_table[k * s1];
            const float w2r = f->cos_table[k * s2], w2i = -f->sin_table[k * s2];
            const float w3r = f->cos_table[(k + half) * s2], w3i = -f->sin_table[(k + half) * s2];
            for (float *a = z + 2 * k, *end = z + 2 * m; a < end; a += 4 * len) {
                float *b = a + 2 * half, *c = a + 2 * len, *d = c + 2 * half;
                float ar = a[0], ai = a[1], br = b[0], bi = b[1], cr = c[0], ci = c[1], dr = d[0], di = d[1];
                BUTTERFLY(ar, ai, br, bi, w1r, w1i);  /* stage len */
                BUTTERFLY(cr, ci, dr, di, w1r, w1i);
                BUTTERFLY(ar, ai, cr, ci, w2r, w2i);  /* stage 2 len */
                BUTTERFLY(br, bi, dr, di, w3r, w3i);
                a[0] = ar;
                a[1] = ai;
                b[0] = br;
                b[1] = bi;
                c[0] = cr;
                c[1] = ci;
                d[0] = dr;
                d[1] = di;
            }
        }
    }
}

/* One bin of the power spectrum from the half-size FFT Z of the real frame packed as complex pairs (even
 * samples real, odd imaginary): X[k] = (Z[a] + conj Z[b]) / 2 - i e^{-2 pi i k / n_fft} (Z[a] - conj Z[b]) / 2
 * with a = k mod h, b = (h - k) mod h, h = n_fft / 2; (wr, wi) = e^{-2 pi i k / n_fft}. */
static inline float bin(const float *z, int32_t a, int32_t b, float wr, float wi) {
    const float ar = z[2 * a], ai = z[2 * a + 1], br = z[2 * b], bi = z[2 * b + 1];
    float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);  /* (Z[k] + conj Z[h-k]) / 2 */
    float dr = 0.5f * (ai + bi), di = 0.5f * (br - ar);  /* (Z[k] - conj Z[h-k]) / (2i) */
    float xr = er + (dr * wr - di * wi), xi = ei + (dr * wi + di * wr);
    return xr * xr + xi * xi;
}

/* Power spectrum |X[k]|^2, k <= n_fft / 2, of the real frame x [win], windowed and zero-padded to n_fft, into
 * pow: one FFT of half the size (the frame's samples as complex pairs, written in the FFT's input order as they
 * are windowed), then each bin from a pair of its outputs. Half the work of a complex FFT of the real frame;
 * the same sums to float rounding. */
static void power(const acom_frontend *f, const float *x, float *z, float *pow) {
    const int32_t h = f->n_fft / 2, pairs = f->win / 2;
    const float *w = f->window;
    for (int32_t i = 0; i < pairs; i++) {
        float *zj = z + 2 * f->bitrev[i];
        zj[0] = x[2 * i] * w[2 * i];
        zj[1] = x[2 * i + 1] * w[2 * i + 1];
    }
    for (int32_t i = pairs; i < h; i++) {
        float *zj = z + 2 * f->bitrev[i];
        zj[0] = 2 * i < f->win ? x[2 * i] * w[2 * i] : 0.f;
        zj[1] = 0.f;
    }
    fft(f, h, z);
    pow[0] = bin(z, 0, 0, f->cos_table[0], -f->sin_table[0]);
    for (int32_t k = 1; k < h; k++) pow[k] = bin(z, k, h - k, f->cos_table[k], -f->sin_table[k]);
    pow[h] = bin(z, 0, 0, -1.f, 0.f);
}

int32_t acom_features_i8(const acom_frontend *f, const float *audio, int32_t n, int8_t *out, float *scratch) {
    if (n < f->win) return 0;
    int32_t frames = 1 + (n - f->win) / f->hop;
    /* scratch: the half-size FFT's values [n_fft / 2 complex], then the power spectrum [n_fft / 2 + 1] */
    float *z = scratch, *pow = scratch + f->n_fft;
    for (int32_t t = 0; t < frames; t++) {
        power(f, audio + t * f->hop, z, pow);
        const float *w = f->mel_weights;
        for (int32_t m = 0; m < f->n_mels; m++) {
            float mel = 0.f;
            const float *p = pow + f->mel_first[m];
            for (int32_t k = 0; k < f->mel_count[m]; k++) mel += w[k] * p[k];
            w += f->mel_count[m];
            float v = (logf(mel + f->log_floor) - f->mean[m]) / f->std[m];
            /* nearbyintf (halves to even) of v / in_scale: below 2^22 in size, adding and taking away 1.5 * 2^23
             * rounds to the integer in the default rounding mode; larger values are integers already */
            float r = v / f->in_scale;
            if (r < 4194304.f && r > -4194304.f) r = (r + 12582912.f) - 12582912.f;
            float q = r + (float)f->in_zero_point;
            out[m * frames + t] = (int8_t)(q < -128.f ? -128 : q > 127.f ? 127 : (int32_t)q);
        }
    }
    return frames;
}
