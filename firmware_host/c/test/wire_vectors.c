/* Prints what the C wire implementation makes of the inputs in vectors_in.h (written by
 * acom.firmware_host.wire_c from runtime/wire_vectors/wire_v3.json and more streams): every stream's packets and
 * serial frames, packets encoded one by one (full and short), and CRC-32C, CRC-16, SHA-256, HMAC and COBS of
 * extra inputs, one hex line each, for Python to compare. */
#include <stdint.h>
#include <string.h>

#include "../acom_sha256.h"
#include "../acom_wire.h"
#include "io.h"
#include "vectors_in.h"

static void put_hex(const char *label, int a, int b, const uint8_t *p, int n) {
    static const char HEX[] = "0123456789abcdef";
    static char line[2 * ACOM_MAX_SERIAL + 64];
    char *q = line;
    for (const char *s = label; *s;) *q++ = *s++;
    for (int v = 0, i = 0; i < 2; i++) { /* two small numbers after the label */
        v = i ? b : a;
        *q++ = ' ';
        if (v < 0) {
            *q++ = '-';
            v = -v;
        }
        char digits[12];
        int k = 0;
        do digits[k++] = (char)('0' + v % 10); while ((v /= 10));
        while (k) *q++ = digits[--k];
    }
    *q++ = ' ';
    for (int i = 0; i < n; i++) {
        *q++ = HEX[p[i] >> 4];
        *q++ = HEX[p[i] & 15];
    }
    *q++ = '\n';
    *q = 0;
    io_write(line);
}

static uint8_t packet[ACOM_MAX_PACKET], frame[ACOM_MAX_SERIAL], digest[32];

int main(void) {
    for (int i = 0; i < V_NCASES; i++) {
        const v_case *c = &V_CASES[i];
        acom_stream s = {.device_id = c->device_id, .stream_id = c->stream_id, .codebook_id = acom_codebook_id(c->hash),
                         .codebook_sizes = c->sizes, .priors = c->priors, .key = c->key, .key_len = c->key_len,
                         .tag_len = (uint8_t)c->tag_len, .frames_per_packet = (uint16_t)c->frames_per_packet,
                         .n_q = (uint8_t)c->n_q, .full_every = c->full_every, .first_seq = c->first_seq};
        for (int j = 0, t = 0; j < c->n_cuts; t += c->cuts[2 * j + 1], j++) {
            int len = acom_stream_packet(&s, c->codes + t, c->cuts[2 * j], c->cuts[2 * j + 1], c->t, j + 1 == c->n_cuts,
                                         packet, sizeof packet);
            if (len < 0) return 1;
            put_hex("packet", i, j, packet, len);
            len = acom_frame_serial(packet, (size_t)len, frame, sizeof frame);
            if (len < 0) return 1;
            put_hex("serial", i, j, frame, len);
        }
    }
    for (int k = 0; k < V_NENCODE; k++) {
        const v_encode *e = &V_ENCODE[k];
        const uint8_t *key = e->key_off < 0 ? NULL : V_BLOB + e->key_off;
        int n = e->is_short ? acom_encode_short(&e->p, &e->c, V_BLOB + e->off, e->len, key, e->key_len, packet,
                                                sizeof packet)
                            : acom_encode_full(&e->p, V_BLOB + e->off, e->len, key, e->key_len, e->tag_len, packet,
                                               sizeof packet);
        put_hex("encode", k, n, packet, n < 0 ? 0 : n);
    }
    for (int k = 0; k < V_NEXTRA; k++) {
        const uint8_t *p = V_BLOB + V_EXTRA[k].off;
        int n = (int)V_EXTRA[k].len;
        uint32_t crc = acom_crc32c(p, (size_t)n);
        uint8_t le[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
        put_hex("crc", k, n, le, 4);
        uint16_t check = acom_crc16(p, (size_t)n);
        le[0] = (uint8_t)check;
        le[1] = (uint8_t)(check >> 8);
        put_hex("crc16", k, n, le, 2);
        acom_sha256(p, (size_t)n, digest);
        put_hex("sha256", k, n, digest, 32);
        acom_hmac_sha256(V_BLOB + V_EXTRA[k].key_off, V_EXTRA[k].key_len, p, (size_t)n, digest);
        put_hex("hmac", k, n, digest, 32);
        int len = acom_frame_serial(p, (size_t)n, frame, sizeof frame);
        put_hex("serial", -1, k, frame, len < 0 ? 0 : len);
    }
    /* refusals: a code >= K, a buffer too small for packed codes, for a full packet, a short one and a stream's
     * packet (Python has no buffers: these are the device's own); a stream's packet after seq 2^32 - 1, and
     * one whose first frame would be 2^32 (Python: field) */
    static const uint32_t sizes[1] = {64};
    static const uint16_t big[1] = {64}, small[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t two[2] = {1, 2};
    uint8_t r[7];
    r[0] = (uint8_t)-acom_pack_codes(big, 1, 1, 1, sizes, packet, sizeof packet);
    r[1] = (uint8_t)-acom_pack_codes(small, 1, 8, 8, sizes, packet, 1);  /* 6 bytes into 1 */
    acom_packet p = {1, 1, 5, 10, 0, 1, 2, 2, 1, 0, 0};
    acom_context c = {1, 1, 0, 4, 8, 2, 1, 0, 0};
    r[2] = (uint8_t)-acom_encode_full(&p, two, 2, NULL, 0, 0, packet, ACOM_FULL_HEADER + 5);  /* needs 38 */
    r[3] = (uint8_t)-acom_encode_short(&p, &c, two, 2, NULL, 0, packet, 5);                  /* needs 6 */
    acom_stream s = {.codebook_sizes = sizes, .frames_per_packet = 8, .n_q = 1, .full_every = 1};
    r[4] = (uint8_t)-acom_stream_packet(&s, small, 1, 8, 8, 1, packet, ACOM_FULL_HEADER + 6 + 3);  /* needs 42 */
    s.first_seq = 0xFFFFFFFFu;
    r[5] = acom_stream_packet(&s, small, 1, 8, 8, 0, packet, sizeof packet) > 0
               ? (uint8_t)-acom_stream_packet(&s, small, 1, 8, 8, 1, packet, sizeof packet) : 0xFF;
    s.first_seq = s.index = 0;
    s.next_frame = 0x100000000u;
    r[6] = (uint8_t)-acom_stream_packet(&s, small, 1, 8, 8, 1, packet, sizeof packet);
    put_hex("errors", 0, 0, r, 7);
    io_write("done\n");
    return 0;
}
