/* acom wire format v2 on the device: packets of bit-packed RVQ codes, full and compact headers, CRC-32C,
 * HMAC-SHA256 tags and COBS serial framing, as docs/wire.md specifies and runtime/wire_vectors/wire_v2.json pins
 * byte for byte. C99, no allocation, no I/O: the caller owns every buffer. Written by hand (no library fits
 * a microcontroller here); checked against the Python implementation on the host, an aarch64 Linux binary
 * under qemu-aarch64 and Cortex-M firmware under qemu-system-arm (tests/firmware_host/test_wire_c.py). */
#ifndef ACOM_WIRE_H
#define ACOM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "acom_range.h"

/* ACOM_WIRE_VERSION, ACOM_MAX_PACKET (1400: one UDP datagram on any Ethernet path), header, tag and CRC sizes,
 * the flags: generated from acom/runtime/wire.py (acom.firmware_host.c_constants), never copied by hand */
#include "acom_wire_constants.h"

#define ACOM_MAX_SERIAL (ACOM_MAX_PACKET + ACOM_MAX_PACKET / 254 + 2)  /* COBS + the zero delimiter */

/* Errors (negative returns), named as the Python WireError reasons. */
#define ACOM_E_FIELD (-1)  /* a field out of range (codes >= K, n_q, n_frames) */
#define ACOM_E_SIZE (-2)   /* the packet would exceed ACOM_MAX_PACKET, or the output buffer is too small */

/* One packet's fields (the payload is given apart). */
typedef struct {
    uint32_t device_id;
    uint16_t stream_id;
    uint32_t seq;
    uint32_t first_frame;
    uint64_t codebook_id;   /* acom_codebook_id() of the bundle's codebook hash */
    uint8_t n_q;
    uint16_t n_frames;
    uint8_t entropy_coded;
    uint8_t end_of_stream;
} acom_packet;

/* CRC-32C (Castagnoli), the whole-message value: acom_crc32c("123456789", 9) == 0xE3069283. */
uint32_t acom_crc32c(const uint8_t *data, size_t len);

/* SHA-256 and HMAC-SHA256 (RFC 2104); out receives 32 bytes. */
void acom_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
void acom_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]);

/* The 64-bit id packets carry: the first 8 bytes of the bundle's SHA-256 codebook hash, little-endian. */
uint64_t acom_codebook_id(const uint8_t hash[32]);

/* Bit-pack codes[s * stride + t] (s < n_q, t < n_frames) frame by frame, stage by stage, ceil(log2 K_s)
 * bits each, LSB first. Returns the payload's length or ACOM_E_FIELD / ACOM_E_SIZE. */
int acom_pack_codes(const uint16_t *codes, int n_q, int n_frames, int stride, const uint32_t *codebook_sizes,
                    uint8_t *out, size_t cap);

/* Packet bytes into out: the full header (compact 0) or the 9-byte compact one (compact 1; n_q <= 15,
 * n_frames <= 4095), the payload, the tag when key is not NULL, the CRC. Returns the length or an error. */
int acom_encode_packet(const acom_packet *p, const uint8_t *payload, size_t payload_len, const uint8_t *key,
                       size_t key_len, int compact, uint8_t *out, size_t cap);

/* COBS-encode a packet and append the zero delimiter (a serial frame). Returns the length or ACOM_E_SIZE. */
int acom_frame_serial(const uint8_t *packet, size_t len, uint8_t *out, size_t cap);

/* A sending stream: the state acom send keeps between packets (python: sender.stream_packets). */
typedef struct {
    uint32_t device_id;
    uint16_t stream_id;
    uint64_t codebook_id;
    const uint32_t *codebook_sizes;
    const uint8_t *key;     /* NULL: untagged */
    size_t key_len;
    uint32_t full_every;    /* one packet in this many (the first included) and the last have the full header */
    uint32_t next_seq;      /* set to the first sequence number; advanced by acom_stream_packet */
    uint32_t next_frame;    /* the stream's frames sent so far (the next packet's first_frame) */
    uint32_t index;         /* packets sent */
    const acom_prior *priors;  /* NULL: payloads bit-packed; else range-coded under these (one per stage sent) */
} acom_stream;

/* The stream's next packet of codes [n_q][n_frames] (row stride `stride`), bit-packed or range-coded (priors);
 * `end` marks the last. Returns the packet's length or an error (nothing advanced on error). */
int acom_stream_packet(acom_stream *s, const uint16_t *codes, int n_q, int n_frames, int stride, int end,
                       uint8_t *out, size_t cap);

#endif
