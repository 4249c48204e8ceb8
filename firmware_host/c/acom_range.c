/* Range-coded payloads (see acom_range.h; the byte layout is acom.codes.priors's, docs/wire.md). */
#include "acom_range.h"
#include "acom_wire.h"

#define PRECISION 24
#define TOTAL (1u << PRECISION)
#define WORD 0x100000000ull  /* a state below this many is renormalized: one 32-bit word shifted out */

typedef struct {
    uint64_t lower, range;
    uint32_t n_held, first_held;  /* words held back while the interval straddles a carry ("inverted") */
    uint8_t *out;
    size_t cap, len;
    int overflow;
} coder;

static void put_word(coder *c, uint32_t w) {  /* big-endian, as bitrate._words_to_bytes writes them */
    if (c->len + 4 > c->cap) {
        c->overflow = 1;
        return;
    }
    for (int i = 0; i < 4; i++) c->out[c->len++] = (uint8_t)(w >> (24 - 8 * i));
}

static void put_held(coder *c, int carry) {  /* the held words, now that the carry into them is known */
    put_word(c, c->first_held + (carry ? 1u : 0u));
    for (uint32_t i = 1; i < c->n_held; i++) put_word(c, carry ? 0u : 0xFFFFFFFFu);
    c->n_held = 0;
}

static void encode(coder *c, uint32_t left, uint32_t prob) {
    uint64_t scale = c->range >> PRECISION;
    uint64_t lower = c->lower + scale * left;  /* wraps: the carry is resolved through the held words */
    c->range = scale * prob;
    if (c->n_held && lower + c->range > lower) put_held(c, lower < c->lower);
    c->lower = lower;
    if (c->range < WORD) {
        uint32_t word = (uint32_t)(c->lower >> 32);
        c->range <<= 32;
        c->lower <<= 32;
        if (c->n_held) {
            c->n_held++;
        } else if (c->lower + c->range > c->lower) {
            put_word(c, word);
        } else {
            c->n_held = 1;
            c->first_held = word;
        }
    }
}

/* Left cumulative and probability (24-bit fixed point) of code `code` under the stage's p(. | h), or p(.)
 * when h < 0 or h was never followed by anything in training: constriction's fast quantization, leaky (every
 * code at least 1): left(i) = floor(sum(p[0..i)) * (2^24 - K) / sum(p)) + i. Two sums in index order. */
static void model(const acom_prior *p, long h, uint32_t code, uint32_t *left, uint32_t *prob) {
    uint32_t j = 0, end = 0;
    double types = 0.0, denom = 1.0, norm = 0.0, below = 0.0, upto = 0.0;
    int ctx = h >= 0 && p->indptr[h] != p->indptr[h + 1];
    if (ctx) {
        j = p->indptr[h];
        end = p->indptr[h + 1];
        types = p->ctx_types[h];
        denom = p->ctx_denom[h];
    }
    for (uint32_t i = 0; i < p->k; i++) {
        if (i == code) below = norm;
        if (i == code + 1) upto = norm;
        double v = p->p_uni[i];
        if (ctx) {  /* (T_h p(c) + n_hc) / (N_h + T_h), in bitrate._StageModel.row's order of operations */
            v = types * v;
            if (j < end && p->cur[j] == i) v = v + (double)p->count[j++];
            v = v / denom;
        }
        norm = norm + v;
    }
    double scale = (double)(TOTAL - p->k) / norm;
    *left = (uint32_t)(below * scale) + code;
    *prob = (code + 1 == p->k ? TOTAL : (uint32_t)(upto * scale) + code + 1) - *left;
}

int acom_entropy_codes(const acom_prior *priors, const uint16_t *codes, int n_q, int n_frames, int stride,
                       uint8_t *out, size_t cap) {
    if (n_q < 1 || n_q > ACOM_MAX_STAGES || n_frames < 0 || n_frames > ACOM_MAX_FRAMES) return ACOM_E_FIELD;
    for (int s = 0; s < n_q; s++) {
        if (priors[s].k < 1 || priors[s].k > 65536) return ACOM_E_FIELD;
        for (int t = 0; t < n_frames; t++)
            if (codes[s * stride + t] >= priors[s].k) return ACOM_E_FIELD;
    }
    coder c = {0, UINT64_MAX, 0, 0, out, cap, 0, 0};
    for (int s = 0; s < n_q; s++) {
        if (priors[s].k == 1) continue;  /* one code: nothing to send */
        for (int t = 0; t < n_frames; t++) {
            uint32_t left, prob;
            model(&priors[s], t ? (long)codes[s * stride + t - 1] : -1, codes[s * stride + t], &left, &prob);
            encode(&c, left, prob);
        }
    }
    if (c.range == UINT64_MAX) return 0;  /* nothing coded: an empty payload */
    /* seal: a point of the final interval, its first word, and a zero word when that alone would not do */
    uint64_t point = c.lower + (WORD - 1);
    int carry = point < c.lower;
    if (c.n_held) put_held(&c, carry);
    uint32_t point_word = (uint32_t)(point >> 32);
    put_word(&c, point_word);
    int zero = (uint32_t)((c.lower + c.range) >> 32) == point_word;
    if (zero) put_word(&c, 0);
    if (c.overflow) return ACOM_E_SIZE;
    /* Drop up to 3 last bytes while the decoder, which pads with 0xFF bytes to a word and reads zero words past
     * the end, still lands in the final interval: the value it then sees in its last 64-bit window stays in
     * [lower, lower + range) on the same side of the carry as the point (bitrate._drop_tail_bytes finds the
     * same by trial decodes). */
    for (int k = 1; k <= 3; k++) {
        uint32_t pad = (1u << (8 * k)) - 1u;
        uint64_t x = zero ? (uint64_t)point_word << 32 | pad : (uint64_t)(point_word | pad) << 32;
        if (x - c.lower >= c.range || (x < c.lower) != carry) break;
        c.len--;
    }
    return (int)c.len;
}
