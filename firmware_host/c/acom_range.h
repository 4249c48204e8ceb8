/* Entropy-coded payloads on the device: the codes of one packet range-coded under the bundle's code priors,
 * byte for byte what acom.codes.priors.encode_codes writes (so acom serve decodes them with constriction).
 *
 * The coder is constriction's queue range coder as its Python binding uses it (32-bit words, a 64-bit state,
 * 24-bit probabilities); the models are its "fast" quantization of the float64 probabilities of the priors:
 * p(c) for a stage's first code, p(c | previous code of the stage) (Witten-Bell, docs/wire.md) after it. The
 * float64 arithmetic is the Python's, operation for operation, so the build must not fuse multiply-adds
 * (-ffp-contract=off: CMakeLists.txt sets it). Written by hand: no range coder that reproduces constriction's
 * output exists for a microcontroller. C99, no allocation, O(1) memory beyond the tables, O(K) time per code. */
#ifndef ACOM_RANGE_H
#define ACOM_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* One RVQ stage's priors, as acom.firmware_host.priors_c writes them from a bundle's priors.safetensors. */
typedef struct {
    uint32_t k;               /* codebook size K (1..65536) */
    const double *p_uni;      /* [K] p(c) = (n_c + alpha) / (N + alpha K) */
    const double *ctx_types;  /* [K] T_h: distinct codes seen after h (1 where none) */
    const double *ctx_denom;  /* [K] N_h + T_h */
    const uint32_t *indptr;   /* [K + 1] the pairs that start with h are cur[indptr[h] .. indptr[h + 1]) */
    const uint16_t *cur;      /* [M] the code that followed, ascending within each h */
    const uint32_t *count;    /* [M] how often */
} acom_prior;

/* Range-code codes[s * stride + t] (s < n_q, t < n_frames) stage after stage under priors[0 .. n_q) into out.
 * Returns the payload's length, ACOM_E_FIELD (a code >= K, n_q or n_frames out of range) or ACOM_E_SIZE
 * (out too small). */
int acom_entropy_codes(const acom_prior *priors, const uint16_t *codes, int n_q, int n_frames, int stride,
                       uint8_t *out, size_t cap);

#endif
