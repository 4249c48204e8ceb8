/* Encodes what stdin asks for, for property tests against the Python implementation (Linux only: the
 * microcontroller builds take their inputs compiled in). Records, little-endian, one after another:
 *   'P' PACKET, tag_len u8, PAYLOAD_KEY                                            -> acom_encode_full
 *   'S' PACKET, context: device u32, stream u16, codebook u64, seq u32, first_frame u32,
 *       frames_per_packet u16, n_q u8, entropy u8, tag_len u8; PAYLOAD_KEY        -> acom_encode_short
 *   'C' n_q u8, n_frames u16, sizes u32 x n_q, codes u16 x n_q x n_frames        -> acom_pack_codes
 *   'F' len u16, bytes                                                            -> acom_frame_serial
 *   'E' n_q u8, n_frames u16, per stage (k u32, m u32, p_uni f64 x k, ctx_types f64 x k, ctx_denom f64 x k,
 *       indptr u32 x (k + 1), cur u16 x m, count u32 x m), codes u16 x n_q x n_frames -> acom_entropy_codes
 * where PACKET is device u32, stream u16, seq u32, first_frame u32, codebook u64, n_q u8, n_frames u16,
 * frames_per_packet u16, stream_n_q u8, entropy u8, end u8, and PAYLOAD_KEY is payload_len u16, payload,
 * has_key u8, key_len u16, key.
 * Prints "KIND RESULT HEX" per record: RESULT is the function's return (a length, or a negative error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../acom_range.h"
#include "../acom_wire.h"

static uint64_t get(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        int c = getchar();
        if (c == EOF) exit(3);
        v |= (uint64_t)c << (8 * i);
    }
    return v;
}

static void get_bytes(uint8_t *p, size_t n) {
    if (fread(p, 1, n, stdin) != n) exit(3);
}

static void put(char kind, int ret, const uint8_t *p) {
    printf("%c %d ", kind, ret);
    for (int i = 0; i < ret; i++) printf("%02x", p[i]);
    putchar('\n');
}

static void *table(size_t n, size_t each) { /* n numbers of `each` bytes from stdin (doubles bit for bit) */
    uint8_t *p = malloc(n * each + 1);
    if (!p) exit(4);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = get((int)each);
        if (each == 8) {
            memcpy(p + 8 * i, &v, 8);
        } else if (each == 4) {
            uint32_t w = (uint32_t)v;
            memcpy(p + 4 * i, &w, 4);
        } else {
            uint16_t w = (uint16_t)v;
            memcpy(p + 2 * i, &w, 2);
        }
    }
    return p;
}

static void free_prior(acom_prior *p) {
    free((void *)p->p_uni);
    free((void *)p->ctx_types);
    free((void *)p->ctx_denom);
    free((void *)p->indptr);
    free((void *)p->cur);
    free((void *)p->count);
}

static void get_packet(acom_packet *p) {
    p->device_id = (uint32_t)get(4);
    p->stream_id = (uint16_t)get(2);
    p->seq = (uint32_t)get(4);
    p->first_frame = (uint32_t)get(4);
    p->codebook_id = get(8);
    p->n_q = (uint8_t)get(1);
    p->n_frames = (uint16_t)get(2);
    p->frames_per_packet = (uint16_t)get(2);
    p->stream_n_q = (uint8_t)get(1);
    p->entropy_coded = (uint8_t)get(1);
    p->end_of_stream = (uint8_t)get(1);
}

static uint8_t in[65536], key[65536], out[2 * 65536];

/* The payload into in and its length; the key into key, *has_key whether there is one, its length. */
static size_t get_payload_and_key(int *has_key, size_t *key_len) {
    size_t len = (size_t)get(2);
    get_bytes(in, len);
    *has_key = (int)get(1);
    *key_len = (size_t)get(2);
    get_bytes(key, *key_len);
    return len;
}

static uint16_t codes[255 * 4096];
static uint32_t sizes[255];

int main(void) {
    int kind;
    while ((kind = getchar()) != EOF) {
        if (kind == 'P' || kind == 'S') {
            acom_packet p;
            acom_context c = {0};
            get_packet(&p);
            int tag_len = 0, has_key;
            if (kind == 'P') {
                tag_len = (int)get(1);
            } else {
                c.device_id = (uint32_t)get(4);
                c.stream_id = (uint16_t)get(2);
                c.codebook_id = get(8);
                c.seq = (uint32_t)get(4);
                c.first_frame = (uint32_t)get(4);
                c.frames_per_packet = (uint16_t)get(2);
                c.n_q = (uint8_t)get(1);
                c.entropy_coded = (uint8_t)get(1);
                c.tag_len = (uint8_t)get(1);
            }
            size_t key_len, len = get_payload_and_key(&has_key, &key_len);
            const uint8_t *k = has_key ? key : NULL;
            put((char)kind, kind == 'P' ? acom_encode_full(&p, in, len, k, key_len, tag_len, out, sizeof out)
                                        : acom_encode_short(&p, &c, in, len, k, key_len, out, sizeof out), out);
        } else if (kind == 'C') {
            int n_q = (int)get(1), n_frames = (int)get(2);
            for (int s = 0; s < n_q; s++) sizes[s] = (uint32_t)get(4);
            for (int i = 0; i < n_q * n_frames; i++) codes[i] = (uint16_t)get(2);
            put('C', acom_pack_codes(codes, n_q, n_frames, n_frames, sizes, out, sizeof out), out);
        } else if (kind == 'F') {
            size_t len = (size_t)get(2);
            get_bytes(in, len);
            put('F', acom_frame_serial(in, len, out, sizeof out), out);
        } else if (kind == 'E') {
            static acom_prior priors[255];
            int n_q = (int)get(1), n_frames = (int)get(2);
            for (int s = 0; s < n_q; s++) {
                uint32_t k = (uint32_t)get(4), m = (uint32_t)get(4);
                priors[s] = (acom_prior){k, table(k, 8), table(k, 8), table(k, 8), table(k + 1, 4), table(m, 2),
                                         table(m, 4)};
            }
            for (int i = 0; i < n_q * n_frames; i++) codes[i] = (uint16_t)get(2);
            put('E', acom_entropy_codes(priors, codes, n_q, n_frames, n_frames, out, sizeof out), out);
            for (int s = 0; s < n_q; s++) free_prior(&priors[s]);
        } else {
            return 2;
        }
    }
    return 0;
}
