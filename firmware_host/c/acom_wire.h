/* acom wire format v3 on the device: packets of bit-packed or range-coded RVQ codes, full and short, HMAC-SHA256
 * tags (4, 8 or 16 bytes) or CRCs (CRC-32C on full packets, CRC-16 on short ones), and COBS serial framing, as
 * docs/wire.md specifies and runtime/wire_vectors/wire_v3.json pins byte for byte. C99, no allocation, no I/O:
 * the caller owns every buffer. Written by hand (no library fits a microcontroller here); checked against the
 * Python implementation (acom.runtime.wire, acom.runtime.sender) on the host, an aarch64 Linux binary under
 * qemu-aarch64 and Cortex-M firmware under qemu-system-arm (tests/firmware_host/test_wire_c.py). */
#ifndef ACOM_WIRE_H
#define ACOM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "acom_range.h"

/* ACOM_WIRE_VERSION, ACOM_MAX_PACKET (1400: one UDP datagram on any Ethernet path), header, tag and CRC sizes,
 * the flags and the short packet's bits: generated from acom/runtime/wire.py (acom.export.c_constants), never
 * copied by hand */
#include "acom_wire_constants.h"

#define ACOM_MAX_SERIAL (ACOM_MAX_PACKET + ACOM_MAX_PACKET / 254 + 2)  /* COBS + the zero delimiter */

/* Errors (negative returns), named as the Python WireError reasons. */
#define ACOM_E_FIELD (-1)  /* a field out of range (codes >= K, n_q, n_frames, tag length), or a short packet
                              that does not follow its context */
#define ACOM_E_SIZE (-2)   /* the packet would exceed ACOM_MAX_PACKET, or the output buffer is too small */
#define ACOM_E_FRAMING (-3)  /* not valid COBS (a zero byte inside, a block longer than what is left) */

/* One packet's fields (the payload is given apart). */
typedef struct {
    uint32_t device_id;
    uint16_t stream_id;
    uint32_t seq;
    uint32_t first_frame;
    uint64_t codebook_id;        /* acom_codebook_id() of the bundle's codebook hash */
    uint8_t n_q;                 /* stages in this packet, 1..255 */
    uint16_t n_frames;           /* frames in this packet, 0..4096 */
    uint16_t frames_per_packet;  /* the stream's frames per packet, 1..4096 */
    uint8_t stream_n_q;          /* the stream's usual n_q, 1..255 */
    uint8_t entropy_coded;
    uint8_t end_of_stream;
} acom_packet;

/* What the receiver knows of a stream from its last full packet (python: wire.StreamContext): a short packet
 * is encoded against it. */
typedef struct {
    uint32_t device_id;
    uint16_t stream_id;
    uint64_t codebook_id;
    uint32_t seq;                /* the full packet's seq */
    uint32_t first_frame;        /* the full packet's first frame */
    uint16_t frames_per_packet;
    uint8_t n_q;                 /* the stream's usual n_q */
    uint8_t entropy_coded;
    uint8_t tag_len;             /* the stream's tag length: 0 (no key: a CRC), 4, 8 or 16 */
} acom_context;

/* CRC-32C (Castagnoli), the whole-message value: acom_crc32c("123456789", 9) == 0xE3069283. */
uint32_t acom_crc32c(const uint8_t *data, size_t len);

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor): acom_crc16("123456789", 9) ==
 * 0x29B1. */
uint16_t acom_crc16(const uint8_t *data, size_t len);

/* SHA-256 and HMAC-SHA256 (RFC 2104); out receives 32 bytes. */
void acom_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
void acom_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]);

/* The 64-bit id packets carry: the first 8 bytes of the bundle's SHA-256 codebook hash, little-endian. */
uint64_t acom_codebook_id(const uint8_t hash[32]);

/* Bit-pack codes[s * stride + t] (s < n_q, t < n_frames) frame by frame, stage by stage, ceil(log2 K_s)
 * bits each, LSB first. Returns the payload's length or ACOM_E_FIELD / ACOM_E_SIZE. */
int acom_pack_codes(const uint16_t *codes, int n_q, int n_frames, int stride, const uint32_t *codebook_sizes,
                    uint8_t *out, size_t cap);

/* Full-packet bytes into out (python: wire.encode_packet): the 32-byte header, the payload, then with a key
 * (not NULL; key_len may be 0) its HMAC-SHA256 tag cut to tag_len bytes (4, 8 or 16), without one a CRC-32C
 * (tag_len is then ignored). The payload may already sit in out at offset ACOM_FULL_HEADER. Returns the
 * length, ACOM_E_FIELD or ACOM_E_SIZE. */
int acom_encode_full(const acom_packet *p, const uint8_t *payload, size_t payload_len, const uint8_t *key,
                     size_t key_len, int tag_len, uint8_t *out, size_t cap);

/* Short-packet bytes into out (python: wire.encode_short) for a receiver that holds ctx: a first byte (short,
 * end, n_q follows, n_frames follows, stream_id & 15), seq & 0xFF, n_q when it is not ctx's n_q, n_frames
 * (2 bytes) when it is not ctx's frames per packet; the payload; the tag (ctx's tag length; key required
 * exactly when it is not 0) or a CRC-16. p must be of ctx's stream (ids, codebook, coding, frames per packet,
 * usual n_q) at the first frame its seq implies (ctx's first frame + (seq - ctx's seq) x frames per packet),
 * else ACOM_E_FIELD. The payload may already sit in out where the header ends (acom_short_header()). */
int acom_encode_short(const acom_packet *p, const acom_context *ctx, const uint8_t *payload, size_t payload_len,
                      const uint8_t *key, size_t key_len, uint8_t *out, size_t cap);

/* Bytes of the short header acom_encode_short writes for a packet of n_q stages and n_frames frames. */
size_t acom_short_header(int n_q, int n_frames, const acom_context *ctx);

/* COBS-encode a packet and append the zero delimiter (a serial frame). Returns the length or ACOM_E_SIZE. */
int acom_frame_serial(const uint8_t *packet, size_t len, uint8_t *out, size_t cap);

/* COBS-decode one serial frame's bytes (without its zero delimiter) into out, as Python's `cobs.decode`
 * reads them. Returns the decoded length, ACOM_E_FRAMING or ACOM_E_SIZE (out too small). */
int acom_cobs_decode(const uint8_t *frame, size_t len, uint8_t *out, size_t cap);

/* A sending stream: the state a device keeps between packets (python: sender.StreamSender). The caller sets
 * the settings; the fields acom_stream_packet keeps start at 0 (a designated initializer leaves them so). */
typedef struct {
    uint32_t device_id;
    uint16_t stream_id;
    uint64_t codebook_id;
    const uint32_t *codebook_sizes;
    const acom_prior *priors;    /* NULL: payloads bit-packed; else range-coded under these (one per stage sent) */
    const uint8_t *key;          /* NULL: untagged (CRCs) */
    size_t key_len;
    uint8_t tag_len;             /* with a key: bytes of tag, 4, 8 or 16 (ignored without one) */
    uint16_t frames_per_packet;  /* what a packet holds, the last excepted (said by the full packets) */
    uint8_t n_q;                 /* the stream's usual n_q (said by the full packets; a packet may send another) */
    uint32_t full_every;         /* the first packet, one in this many after it and the last are full */
    uint32_t first_seq;          /* the first packet's sequence number */
    /* kept by acom_stream_packet: */
    uint32_t index;              /* packets sent (the next packet's seq is first_seq + index) */
    uint64_t next_frame;         /* frames sent (the next packet's first frame; over 32 bits: refused) */
    uint32_t full_seq;           /* seq and first frame of the last full packet: the receiver's context */
    uint32_t full_frame;
    uint8_t irregular;           /* a packet held other than frames_per_packet frames: the packets after it are
                                    full (a short packet's first frame must follow from its seq) */
    uint32_t payload_bytes;      /* payload bytes sent (the codes' share of the bytes on the link) */
} acom_stream;

/* The stream's next packet of codes [n_q][n_frames] (row stride `stride`), bit-packed or range-coded (priors);
 * `end` marks the last. Full (the first, every full_every-th, the last, any after an irregular one) or short.
 * Returns the packet's length or an error (nothing advanced on error). */
int acom_stream_packet(acom_stream *s, const uint16_t *codes, int n_q, int n_frames, int stride, int end,
                       uint8_t *out, size_t cap);

#endif
