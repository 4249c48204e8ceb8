/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the packet tag; written by hand for the device. */
#ifndef ACOM_SHA256_H
#define ACOM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;     /* message length so far */
    uint8_t block[64];
    size_t fill;        /* bytes waiting in block */
} acom_sha256_ctx;

void acom_sha256_init(acom_sha256_ctx *c);
void acom_sha256_update(acom_sha256_ctx *c, const uint8_t *data, size_t len);
void acom_sha256_final(acom_sha256_ctx *c, uint8_t out[32]);

/* HMAC-SHA256 of the message a (a_len bytes) followed by b (b_len bytes): the packet tag covers a rebuilt
 * header and a payload that do not sit next to each other. */
void acom_hmac_sha256_parts(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len, const uint8_t *b,
                            size_t b_len, uint8_t out[32]);

#endif
