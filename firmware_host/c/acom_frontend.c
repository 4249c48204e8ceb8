/* See acom_frontend.h. */
#include "acom_frontend.h"

#include <math.h>

/* In-place radix-2 FFT of m complex values (re, im), m a power of two, m <= n_fft: twiddle e^{-2 pi i k / len}
 * is the table's entry k * n_fft / len. */
static void fft(const acom_frontend *f, int32_t m, float *re, float *im) {
    for (int32_t i = 1, j = 0; i < m; i++) { /* bit reversal */
        int32_t bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            float t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int32_t len = 2; len <= m; len <<= 1) {
        int32_t step = f->n_fft / len;
        for (int32_t i = 0; i < m; i += len)
            for (int32_t k = 0; k < len / 2; k++) {
                float wr = f->cos_table[k * step], wi = -f->sin_table[k * step];
                float *ar = re + i + k, *ai = im + i + k, *br = re + i + k + len / 2, *bi = im + i + k + len / 2;
                float tr = *br * wr - *bi * wi, ti = *br * wi + *bi * wr;
                *br = *ar - tr;
                *bi = *ai - ti;
                *ar += tr;
                *ai += ti;
            }
    }
}

/* Power spectrum |X[k]|^2, k <= n_fft / 2, of a real frame x [n_fft] into pow: the n_fft real values as n_fft / 2
 * complex ones (even samples real, odd imaginary), one FFT of half the size, then each bin from a pair:
 * X[k] = (Z[k] + conj Z[h-k]) / 2 - i e^{-2 pi i k / n_fft} (Z[k] - conj Z[h-k]) / 2, h = n_fft / 2. Half the
 * work of a complex FFT of the real frame; the same sums to float rounding. */
static void power(const acom_frontend *f, const float *x, float *re, float *im, float *pow) {
    int32_t h = f->n_fft / 2;
    for (int32_t i = 0; i < h; i++) {
        re[i] = x[2 * i];
        im[i] = x[2 * i + 1];
    }
    fft(f, h, re, im);
    for (int32_t k = 0; k <= h; k++) {
        int32_t a = k % h, b = (h - k) % h;
        float er = 0.5f * (re[a] + re[b]), ei = 0.5f * (im[a] - im[b]);  /* (Z[k] + conj Z[h-k]) / 2 */
        float dr = 0.5f * (im[a] + im[b]), di = 0.5f * (re[b] - re[a]);  /* (Z[k] - conj Z[h-k]) / (2i) */
        float wr = k < h ? f->cos_table[k] : -1.f, wi = k < h ? -f->sin_table[k] : 0.f;
        float xr = er + (dr * wr - di * wi), xi = ei + (dr * wi + di * wr);
        pow[k] = xr * xr + xi * xi;
    }
}

int32_t acom_features_i8(const acom_frontend *f, const float *audio, int32_t n, int8_t *out, float *scratch) {
    if (n < f->win) return 0;
    int32_t frames = 1 + (n - f->win) / f->hop;
    /* scratch: the windowed frame [n_fft], then the half-size FFT's re, im [n_fft / 2 each]; the power spectrum
     * [n_fft / 2 + 1] over the frame, which is read before it is overwritten */
    float *frame = scratch, *re = scratch + f->n_fft, *im = re + f->n_fft / 2, *pow = scratch;
    for (int32_t t = 0; t < frames; t++) {
        const float *x = audio + t * f->hop;
        for (int32_t i = 0; i < f->n_fft; i++) frame[i] = i < f->win ? x[i] * f->window[i] : 0.f;
        power(f, frame, re, im, pow);
        const float *w = f->mel_weights;
        for (int32_t m = 0; m < f->n_mels; m++) {
            float mel = 0.f;
            for (int32_t k = 0; k < f->mel_count[m]; k++) mel += w[k] * pow[f->mel_first[m] + k];
            w += f->mel_count[m];
            float v = (logf(mel + f->log_floor) - f->mean[m]) / f->std[m];
            float q = nearbyintf(v / f->in_scale) + (float)f->in_zero_point;
            out[m * frames + t] = (int8_t)(q < -128.f ? -128 : q > 127.f ? 127 : (int32_t)q);
        }
    }
    return frames;
}
