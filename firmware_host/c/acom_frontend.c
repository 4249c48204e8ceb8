/* See acom_frontend.h. */
#include "acom_frontend.h"

#include <math.h>

/* In-place radix-2 FFT of n complex values (re, im), n a power of two. */
static void fft(const acom_frontend *f, float *re, float *im) {
    int32_t n = f->n_fft;
    for (int32_t i = 1, j = 0; i < n; i++) { /* bit reversal */
        int32_t bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            float t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int32_t len = 2; len <= n; len <<= 1) {
        int32_t step = n / len;
        for (int32_t i = 0; i < n; i += len)
            for (int32_t k = 0; k < len / 2; k++) {
                float wr = f->cos_table[k * step], wi = -f->sin_table[k * step]; /* e^{-2 pi i k / len} */
                float *ar = re + i + k, *ai = im + i + k, *br = re + i + k + len / 2, *bi = im + i + k + len / 2;
                float tr = *br * wr - *bi * wi, ti = *br * wi + *bi * wr;
                *br = *ar - tr;
                *bi = *ai - ti;
                *ar += tr;
                *ai += ti;
            }
    }
}

int32_t acom_features_i8(const acom_frontend *f, const float *audio, int32_t n, int8_t *out, float *scratch) {
    if (n < f->win) return 0;
    int32_t frames = 1 + (n - f->win) / f->hop;
    float *re = scratch, *im = scratch + f->n_fft;
    for (int32_t t = 0; t < frames; t++) {
        const float *x = audio + t * f->hop;
        for (int32_t i = 0; i < f->n_fft; i++) {
            re[i] = i < f->win ? x[i] * f->window[i] : 0.f;
            im[i] = 0.f;
        }
        fft(f, re, im);
        const float *w = f->mel_weights;
        for (int32_t m = 0; m < f->n_mels; m++) {
            float mel = 0.f;
            for (int32_t k = 0; k < f->mel_count[m]; k++) {
                int32_t b = f->mel_first[m] + k;
                mel += w[k] * (re[b] * re[b] + im[b] * im[b]);
            }
            w += f->mel_count[m];
            float v = (logf(mel + f->log_floor) - f->mean[m]) / f->std[m];
            float q = nearbyintf(v / f->in_scale) + (float)f->in_zero_point;
            out[m * frames + t] = (int8_t)(q < -128.f ? -128 : q > 127.f ? 127 : (int32_t)q);
        }
    }
    return frames;
}
