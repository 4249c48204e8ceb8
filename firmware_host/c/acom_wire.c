/* acom wire format v2: packing, headers, CRC-32C, COBS (see acom_wire.h and docs/wire.md). */
#include "acom_wire.h"
#include "acom_sha256.h"

#include <string.h>

/* Reflected CRC-32C, four bits at a time: a 64-byte table instead of 1 KiB (flash is scarce on an MCU). */
static const uint32_t CRC_NIBBLE[16] = {
    0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u, 0x417b1dbcu, 0x5125dad3u, 0x61c69362u, 0x7198540du,
    0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u, 0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u};

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
        crc = (crc >> 4) ^ CRC_NIBBLE[crc & 15];
    }
    return crc;
}

uint32_t acom_crc32c(const uint8_t *data, size_t len) { return ~crc_update(0xFFFFFFFFu, data, len); }

uint64_t acom_codebook_id(const uint8_t hash[32]) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | hash[i];
    return v;
}

static int bits_for(uint32_t k) { /* ceil(log2 k): the bits of k - 1 */
    int b = 0;
    for (uint32_t v = k - 1; v; v >>= 1) b++;
    return b;
}

int acom_pack_codes(const uint16_t *codes, int n_q, int n_frames, int stride, const uint32_t *codebook_sizes,
                    uint8_t *out, size_t cap) {
    int total = 0;  /* bits per frame; each stage's width is recomputed below rather than kept in a 255-entry
                       array: stack is scarce on a microcontroller, and a packet has a few dozen codes */
    if (n_q < 1 || n_q > ACOM_MAX_STAGES || n_frames < 0 || n_frames > ACOM_MAX_FRAMES) return ACOM_E_FIELD;
    for (int s = 0; s < n_q; s++) {
        if (codebook_sizes[s] < 1 || codebook_sizes[s] > 65536) return ACOM_E_FIELD;  /* K = 1: 0 bits */
        total += bits_for(codebook_sizes[s]);
    }
    if ((size_t)(total * n_frames + 7) / 8 > cap) return ACOM_E_SIZE;
    uint32_t acc = 0;  /* at most 7 pending bits + 16 new ones */
    int n = 0;
    size_t o = 0;
    for (int t = 0; t < n_frames; t++) {
        for (int s = 0; s < n_q; s++) {
            uint16_t c = codes[s * stride + t];
            if (c >= codebook_sizes[s]) return ACOM_E_FIELD;
            acc |= (uint32_t)c << n;
            n += bits_for(codebook_sizes[s]);
            while (n >= 8) {
                out[o++] = (uint8_t)acc;
                acc >>= 8;
                n -= 8;
            }
        }
    }
    if (n) out[o++] = (uint8_t)acc;
    return (int)o;
}

static uint8_t *put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v) { return put16(put16(p, v), v >> 16); }

/* The 31-byte full header: what a full packet sends and what tag and CRC cover for either kind. */
static void full_header(const acom_packet *p, uint8_t flags, uint16_t payload_len, uint8_t h[ACOM_FULL_HEADER]) {
    uint8_t *q = h;
    *q++ = ACOM_MAGIC_0;  /* "AC" */
    *q++ = ACOM_MAGIC_1;
    *q++ = ACOM_WIRE_VERSION;
    *q++ = flags;
    q = put32(q, p->device_id);
    q = put16(q, p->stream_id);
    q = put32(q, p->seq);
    q = put32(q, p->first_frame);
    q = put32(put32(q, (uint32_t)p->codebook_id), (uint32_t)(p->codebook_id >> 32));
    *q++ = p->n_q;
    q = put16(q, p->n_frames);
    put16(q, payload_len);
}

int acom_encode_packet(const acom_packet *p, const uint8_t *payload, size_t payload_len, const uint8_t *key,
                       size_t key_len, int compact, uint8_t *out, size_t cap) {
    if (p->n_q < 1 || (compact && p->n_q > 15) || p->n_frames > ACOM_MAX_FRAMES - (compact ? 1 : 0))
        return ACOM_E_FIELD;
    uint8_t flags = (uint8_t)((p->entropy_coded ? ACOM_FLAG_ENTROPY : 0) | (p->end_of_stream ? ACOM_FLAG_END : 0) |
                              (key ? ACOM_FLAG_TAG : 0) | (compact ? ACOM_FLAG_COMPACT : 0));
    size_t head = compact ? ACOM_COMPACT_HEADER : ACOM_FULL_HEADER;
    size_t total = head + payload_len + (key ? ACOM_TAG_SIZE : 0) + ACOM_CRC_SIZE;
    if (total > ACOM_MAX_PACKET || total > cap) return ACOM_E_SIZE;
    uint8_t full[ACOM_FULL_HEADER];
    full_header(p, flags, (uint16_t)payload_len, full);
    memmove(out + head, payload, payload_len);  /* the payload may already sit in out (acom_stream_packet) */
    if (compact) {
        uint8_t *q = out;
        *q++ = ACOM_COMPACT_MAGIC;  /* "a" */
        *q++ = (uint8_t)(ACOM_WIRE_VERSION << 4 | flags);
        *q++ = (uint8_t)p->stream_id;
        q = put16(q, p->seq & 0xFFFF);
        q = put16(q, p->first_frame & 0xFFFF);
        put16(q, (uint32_t)p->n_q << 12 | p->n_frames);
    } else {
        memcpy(out, full, ACOM_FULL_HEADER);
    }
    /* tag and CRC cover the full header + payload (+ tag), whatever header is sent (docs/wire.md) */
    uint8_t *end = out + head + payload_len;
    uint32_t crc = crc_update(crc_update(0xFFFFFFFFu, full, ACOM_FULL_HEADER), out + head, payload_len);
    if (key) {
        uint8_t tag[32];
        acom_hmac_sha256_parts(key, key_len, full, ACOM_FULL_HEADER, out + head, payload_len, tag);
        memcpy(end, tag, ACOM_TAG_SIZE);
        crc = crc_update(crc, end, ACOM_TAG_SIZE);
        end += ACOM_TAG_SIZE;
    }
    put32(end, ~crc);
    return (int)total;
}

int acom_frame_serial(const uint8_t *packet, size_t len, uint8_t *out, size_t cap) {
    /* COBS as the Python `cobs` package writes it: a block of 254 non-zero bytes that ends the packet gets
     * no empty block after it */
    if (cap < len + len / 254 + 2) return ACOM_E_SIZE;
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (packet[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = packet[i];
        if (++code == 0xFF) {
            out[code_at] = code;
            if (i + 1 == len) {
                out[o++] = 0;
                return (int)o;
            }
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    out[o++] = 0;
    return (int)o;
}

int acom_stream_packet(acom_stream *s, const uint16_t *codes, int n_q, int n_frames, int stride, int end,
                       uint8_t *out, size_t cap) {
    if (s->full_every < 1) return ACOM_E_FIELD;
    int compact = s->index % s->full_every != 0 && !end && n_q <= 15 && n_frames < ACOM_MAX_FRAMES;
    size_t head = compact ? ACOM_COMPACT_HEADER : ACOM_FULL_HEADER;
    if (cap < head) return ACOM_E_SIZE;
    int len = s->priors ? acom_entropy_codes(s->priors, codes, n_q, n_frames, stride, out + head, cap - head)
                        : acom_pack_codes(codes, n_q, n_frames, stride, s->codebook_sizes, out + head, cap - head);
    if (len < 0) return len;
    acom_packet p = {s->device_id, s->stream_id, s->next_seq, s->next_frame, s->codebook_id, (uint8_t)n_q,
                     (uint16_t)n_frames, s->priors != NULL, (uint8_t)(end != 0)};
    int n = acom_encode_packet(&p, out + head, (size_t)len, s->key, s->key_len, compact, out, cap);
    if (n < 0) return n;
    s->next_seq++;
    s->next_frame += (uint32_t)n_frames;
    s->index++;
    return n;
}
