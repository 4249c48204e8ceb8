/* Prints what the C wire implementation makes of the inputs in vectors_in.h (written by
 * acom.firmware_host.wire_c from runtime/wire_vectors/wire_v2.json and more streams): every stream's packets and
 * serial frames, and CRC-32C, SHA-256, HMAC and COBS of extra inputs, one hex line each, for Python to compare. */
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
        acom_stream s = {c->device_id, c->stream_id, acom_codebook_id(c->hash), c->sizes, c->key, c->key_len,
                         c->full_every, c->first_seq, 0, 0, c->priors};
        for (int j = 0, t = 0; t < c->t; j++, t += c->frames_per_packet) {
            int n = c->t - t < c->frames_per_packet ? c->t - t : c->frames_per_packet;
            int len = acom_stream_packet(&s, c->codes + t, c->n_q, n, c->t, t + n >= c->t, packet, sizeof packet);
            if (len < 0) return 1;
            put_hex("packet", i, j, packet, len);
            len = acom_frame_serial(packet, (size_t)len, frame, sizeof frame);
            if (len < 0) return 1;
            put_hex("serial", i, j, frame, len);
        }
    }
    for (int k = 0; k < V_NEXTRA; k++) {
        const uint8_t *p = V_BLOB + V_EXTRA[k].off;
        int n = (int)V_EXTRA[k].len;
        uint32_t crc = acom_crc32c(p, (size_t)n);
        uint8_t le[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
        put_hex("crc", k, n, le, 4);
        acom_sha256(p, (size_t)n, digest);
        put_hex("sha256", k, n, digest, 32);
        acom_hmac_sha256(V_BLOB + V_EXTRA[k].key_off, V_EXTRA[k].key_len, p, (size_t)n, digest);
        put_hex("hmac", k, n, digest, 32);
        int len = acom_frame_serial(p, (size_t)n, frame, sizeof frame);
        put_hex("serial", -1, k, frame, len < 0 ? 0 : len);
    }
    /* refusals: a code >= K, a buffer too small, a compact packet with n_q > 15, a packet over 1400 bytes */
    static const uint32_t sizes[1] = {64};
    static const uint16_t big[1] = {64}, small[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t r[4];
    r[0] = (uint8_t)-acom_pack_codes(big, 1, 1, 1, sizes, packet, sizeof packet);
    r[1] = (uint8_t)-acom_pack_codes(small, 1, 8, 8, sizes, packet, 1);  /* 6 bytes into 1 */
    acom_packet p = {1, 1, 0, 0, 0, 16, 1, 0, 0};
    r[2] = (uint8_t)-acom_encode_packet(&p, packet, 2, NULL, 0, 1, frame, sizeof frame);
    p.n_q = 1;
    r[3] = (uint8_t)-acom_encode_packet(&p, packet, ACOM_MAX_PACKET, NULL, 0, 0, frame, sizeof frame);
    put_hex("errors", 0, 0, r, 4);
    io_write("done\n");
    return 0;
}
