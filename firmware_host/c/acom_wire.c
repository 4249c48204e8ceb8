/* acom wire format v3: packing, full and short packets, CRC-32C and CRC-16, COBS (see acom_wire.h and
 * docs/wire.md). */
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

/* CRC-16/CCITT-FALSE, most significant bit first, four bits at a time (a 32-byte table). */
static const uint16_t CRC16_NIBBLE[16] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50a5u, 0x60c6u, 0x70e7u,
    0x8108u, 0x9129u, 0xa14au, 0xb16bu, 0xc18cu, 0xd1adu, 0xe1ceu, 0xf1efu};

static uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t n) {
    while (n--) {
        crc ^= (uint16_t)(*p++ << 8);
        crc = (uint16_t)(crc << 4) ^ CRC16_NIBBLE[crc >> 12];
        crc = (uint16_t)(crc << 4) ^ CRC16_NIBBLE[crc >> 12];
    }
    return crc;
}

uint16_t acom_crc16(const uint8_t *data, size_t len) { return crc16_update(0xFFFFu, data, len); }

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

/* The code of a tag length in flags bits 2-3 (0 for none), or -1 for a length the format does not have. */
static int tag_code(int tag_len) {
    return tag_len == 0 ? 0 : tag_len == ACOM_TAG_SIZE_1 ? 1 : tag_len == ACOM_TAG_SIZE_2 ? 2
         : tag_len == ACOM_TAG_SIZE_3 ? 3 : -1;
}

/* The fields the integer types do not bound already, and the tag length (python: wire._check_fields). */
static int fields_ok(const acom_packet *p, int tag_len) {
    return p->n_q >= 1 && p->n_frames <= ACOM_MAX_FRAMES && p->frames_per_packet >= 1 &&
           p->frames_per_packet <= ACOM_MAX_FRAMES && p->stream_n_q >= 1 && tag_code(tag_len) >= 0;
}

static uint8_t flags_of(const acom_packet *p, int tag_len, int is_short) {
    return (uint8_t)((p->entropy_coded ? ACOM_FLAG_ENTROPY : 0) | (p->end_of_stream ? ACOM_FLAG_END : 0) |
                     tag_code(tag_len) << ACOM_TAG_SHIFT | (is_short ? ACOM_FLAG_SHORT : 0));
}

/* The 34 bytes tags and CRCs cover before the payload: the full header the packet stands for, then the payload
 * length. A full packet sends the first 32 of them. */
static void signed_header(const acom_packet *p, uint8_t flags, size_t payload_len, uint8_t h[ACOM_SIGNED_HEADER]) {
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
    q = put16(q, p->frames_per_packet);
    *q++ = p->stream_n_q;
    put16(q, (uint32_t)payload_len);
}

/* The packet after its header (head bytes, a full header written here, a short one by the caller): the payload,
 * then over the signed header and the payload the HMAC tag cut to tag_len with a key, else the CRC (CRC-16
 * short, CRC-32C full), little-endian. Returns the packet's length, or ACOM_E_SIZE (nothing written). */
static int emit(const acom_packet *p, int tag_len, size_t head, const uint8_t *payload, size_t payload_len,
                const uint8_t *key, size_t key_len, uint8_t *out, size_t cap) {
    int is_short = head != ACOM_FULL_HEADER;
    size_t total = head + payload_len + (tag_len ? (size_t)tag_len : is_short ? ACOM_CHECK_SIZE : ACOM_CRC_SIZE);
    if (payload_len > ACOM_MAX_PACKET || total > ACOM_MAX_PACKET || total > cap) return ACOM_E_SIZE;
    uint8_t h[ACOM_SIGNED_HEADER];
    signed_header(p, flags_of(p, tag_len, is_short), payload_len, h);
    memmove(out + head, payload, payload_len);  /* the payload may already sit in out */
    if (!is_short) memcpy(out, h, ACOM_FULL_HEADER);
    uint8_t *end = out + head + payload_len;
    if (key) {
        uint8_t tag[32];
        acom_hmac_sha256_parts(key, key_len, h, ACOM_SIGNED_HEADER, out + head, payload_len, tag);
        memcpy(end, tag, (size_t)tag_len);
    } else if (is_short) {
        put16(end, crc16_update(crc16_update(0xFFFFu, h, ACOM_SIGNED_HEADER), out + head, payload_len));
    } else {
        put32(end, ~crc_update(crc_update(0xFFFFFFFFu, h, ACOM_SIGNED_HEADER), out + head, payload_len));
    }
    return (int)total;
}

int acom_encode_full(const acom_packet *p, const uint8_t *payload, size_t payload_len, const uint8_t *key,
                     size_t key_len, int tag_len, uint8_t *out, size_t cap) {
    if (!key) tag_len = 0;
    if (!fields_ok(p, tag_len) || (key && !tag_len)) return ACOM_E_FIELD;
    return emit(p, tag_len, ACOM_FULL_HEADER, payload, payload_len, key, key_len, out, cap);
}

size_t acom_short_header(int n_q, int n_frames, const acom_context *ctx) {
    return ACOM_SHORT_HEADER + (n_q != ctx->n_q ? 1 : 0) + (n_frames != ctx->frames_per_packet ? 2 : 0);
}

/* Whether p is of ctx's stream, at the first frame its seq implies there (python: the check in encode_short). */
static int follows(const acom_packet *p, const acom_context *c) {
    int64_t implied = (int64_t)c->first_frame + ((int64_t)p->seq - (int64_t)c->seq) * c->frames_per_packet;
    return p->device_id == c->device_id && p->stream_id == c->stream_id && p->codebook_id == c->codebook_id &&
           !p->entropy_coded == !c->entropy_coded && p->frames_per_packet == c->frames_per_packet &&
           p->stream_n_q == c->n_q && (int64_t)p->first_frame == implied;
}

int acom_encode_short(const acom_packet *p, const acom_context *ctx, const uint8_t *payload, size_t payload_len,
                      const uint8_t *key, size_t key_len, uint8_t *out, size_t cap) {
    if (!fields_ok(p, ctx->tag_len) || !follows(p, ctx) || !key != !ctx->tag_len) return ACOM_E_FIELD;
    int with_nq = p->n_q != ctx->n_q, with_nframes = p->n_frames != ctx->frames_per_packet;
    int n = emit(p, ctx->tag_len, acom_short_header(p->n_q, p->n_frames, ctx), payload, payload_len, key, key_len,
                 out, cap);
    if (n < 0) return n;
    out[0] = (uint8_t)(ACOM_SHORT | (p->end_of_stream ? ACOM_SHORT_END : 0) | (with_nq ? ACOM_SHORT_NQ : 0) |
                       (with_nframes ? ACOM_SHORT_NFRAMES : 0) | (p->stream_id % ACOM_CONTEXTS));
    out[1] = (uint8_t)p->seq;
    if (with_nq) out[2] = p->n_q;
    if (with_nframes) put16(out + 2 + with_nq, p->n_frames);
    return n;
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

int acom_cobs_decode(const uint8_t *frame, size_t len, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < len) {
        size_t code = frame[i++];
        if (code == 0 || code - 1 > len - i) return ACOM_E_FRAMING;
        for (size_t k = 1; k < code; k++, i++) {
            if (frame[i] == 0) return ACOM_E_FRAMING;
            if (o == cap) return ACOM_E_SIZE;
            out[o++] = frame[i];
        }
        if (code < 0xFF && i < len) {  /* a block shorter than 254 bytes ends at a zero, unless it ends the frame */
            if (o == cap) return ACOM_E_SIZE;
            out[o++] = 0;
        }
    }
    return (int)o;
}

int acom_stream_packet(acom_stream *s, const uint16_t *codes, int n_q, int n_frames, int stride, int end,
                       uint8_t *out, size_t cap) {
    uint64_t seq = (uint64_t)s->first_seq + s->index;
    if (s->full_every < 1 || n_q < 1 || n_q > ACOM_MAX_STAGES || n_frames < 0 || n_frames > ACOM_MAX_FRAMES ||
        seq > 0xFFFFFFFFu || s->next_frame > 0xFFFFFFFFu)
        return ACOM_E_FIELD;
    int tag_len = s->key ? s->tag_len : 0;
    acom_packet p = {s->device_id, s->stream_id, (uint32_t)seq, (uint32_t)s->next_frame, s->codebook_id,
                     (uint8_t)n_q, (uint16_t)n_frames, s->frames_per_packet, s->n_q, s->priors != NULL,
                     (uint8_t)(end != 0)};
    acom_context c = {s->device_id, s->stream_id, s->codebook_id, s->full_seq, s->full_frame, s->frames_per_packet,
                      s->n_q, s->priors != NULL, (uint8_t)tag_len};
    int full = s->index % s->full_every == 0 || end || s->irregular;
    size_t head = full ? ACOM_FULL_HEADER : acom_short_header(n_q, n_frames, &c);
    if (cap < head) return ACOM_E_SIZE;
    /* the payload goes where the header will end: encoding moves nothing */
    int len = s->priors ? acom_entropy_codes(s->priors, codes, n_q, n_frames, stride, out + head, cap - head)
                        : acom_pack_codes(codes, n_q, n_frames, stride, s->codebook_sizes, out + head, cap - head);
    if (len < 0) return len;
    int n = full ? acom_encode_full(&p, out + head, (size_t)len, s->key, s->key_len, tag_len, out, cap)
                 : acom_encode_short(&p, &c, out + head, (size_t)len, s->key, s->key_len, out, cap);
    if (n < 0) return n;
    if (full) {
        s->full_seq = p.seq;
        s->full_frame = p.first_frame;
    }
    s->irregular |= n_frames != s->frames_per_packet;
    s->index++;
    s->next_frame += (uint64_t)n_frames;
    s->payload_bytes += (uint32_t)len;
    return n;
}
