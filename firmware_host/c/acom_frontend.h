/* The firmware's front end: audio -> normalized log-mel -> the graph's int8 input, as core/features.py
 * computes it (frames of win samples every hop, no centre padding; periodic Hann window; the frame
 * zero-padded to n_fft; power spectrum; HTK mel filters; log(mel + floor); (x - mean) / std; rounded to
 * the input's int8 grid). A radix-2 FFT of half the frame's length (the real frame as complex pairs, then
 * split into bins) replaces the training graph's DFT-as-convolution: the same sums in another order (float32
 * rounding differs in the last bits). The tables come from the bundle's manifest
 * (export/c_graph.py writes them as acom_frontend_tables.c). */
#ifndef ACOM_FRONTEND_H
#define ACOM_FRONTEND_H

#include <stdint.h>

typedef struct {
    int32_t n_fft, win, hop, n_mels;
    const float *window;        /* [win] */
    const float *cos_table;     /* [n_fft / 2]: cos(2 pi k / n_fft) */
    const float *sin_table;     /* [n_fft / 2]: sin(2 pi k / n_fft) */
    const uint16_t *bitrev;     /* [n_fft / 2]: i with its log2(n_fft / 2) bits reversed (the FFT's input order) */
    const uint16_t *mel_first;  /* [n_mels]: first DFT bin of each filter */
    const uint16_t *mel_count;  /* [n_mels]: its bins */
    const float *mel_weights;   /* the filters' weights, one after another */
    const float *mean, *std;    /* [n_mels]: feature normalization */
    float log_floor, in_scale;
    int32_t in_zero_point;
} acom_frontend;

extern const acom_frontend acom_frontend_config;

/* int8 features [n_mels][frames] of `n` samples (frames = 1 + (n - win) / hop); scratch: 2 * n_fft floats */
int32_t acom_features_i8(const acom_frontend *f, const float *audio, int32_t n, int8_t *out, float *scratch);

#endif
