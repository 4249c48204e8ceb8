/* audio_in.h on the UART (a CMSDK APB UART at UART_BASE, shared with transport_uart.c): the host's frames as
 * docs/firmware.md specifies them. Each frame is COBS-encoded and ends at a zero byte; decoded it is a type
 * byte, the body and a CRC-16/CCITT-FALSE (little-endian) of type and body:
 *   0x01 START  stream id (u16)     0x02 PCM  samples (int16, 1..AUDIO_MAX_SAMPLES)     0x03 END  (nothing)
 * Empty frames (zero bytes in a row) are skipped: a sender may send a zero at any time to resynchronize. The
 * UART holds one byte: the firmware reads it as it comes, except while a window runs. QEMU's model of this UART
 * takes no byte while one is held (it tells its chardev it cannot receive), so the host's bytes wait on the
 * host and none is lost; a board's UART overruns instead (reported as AUDIO_E_OVERRUN): there the receiver
 * needs DMA into a buffer of a window's processing time (docs/firmware.md). */
#include "../acom_wire.h"
#include "audio_in.h"
#include "cmsdk_uart.h"

#define BODY_MAX (1 + 2 * AUDIO_MAX_SAMPLES + 2)  /* type, samples, CRC-16 */
#define FRAME_MAX (BODY_MAX + BODY_MAX / 254 + 1)  /* COBS-encoded, without its delimiter */

static uint8_t raw[FRAME_MAX], body[BODY_MAX];

int audio_open(void) {
    uart_setup();
    UART->ctrl |= UART_CTRL_RX;
    return 0;
}

/* The next byte received; *overrun set if the UART lost one before it. */
static uint8_t next_byte(int *overrun) {
    while (!(UART->state & UART_STATE_RX_FULL)) {
    }
    if (UART->state & UART_STATE_RX_OVERRUN) {
        UART->state = UART_STATE_RX_OVERRUN;  /* write 1 to clear */
        *overrun = 1;
    }
    return (uint8_t)UART->data;
}

/* The next non-empty frame, decoded into body: its length, or an AUDIO_E_* error. */
static int next_frame(void) {
    size_t n = 0;
    int overrun = 0, too_long = 0;
    for (;;) {
        uint8_t b = next_byte(&overrun);
        if (b != 0) {
            if (n < FRAME_MAX) raw[n++] = b;
            else too_long = 1;  /* dropped as it arrives: memory stays bounded on a noisy line */
        } else if (n || too_long || overrun) {
            break;
        }
    }
    if (overrun) return AUDIO_E_OVERRUN;
    int len = too_long ? ACOM_E_SIZE : acom_cobs_decode(raw, n, body, sizeof body);
    if (len == ACOM_E_SIZE || (len >= 0 && len < 3)) return AUDIO_E_SIZE;
    if (len < 0) return AUDIO_E_FRAMING;
    if (acom_crc16(body, (size_t)len - 2) != (uint16_t)(body[len - 2] | body[len - 1] << 8)) return AUDIO_E_CRC;
    return len;
}

int audio_read(audio_event *ev, int16_t *pcm) {
    int len = next_frame();
    if (len < 0) return len;
    int m = len - 3;  /* the body's bytes */
    switch (body[0]) {
    case AUDIO_START:
        if (m != 2) return AUDIO_E_LENGTH;
        ev->stream_id = (uint16_t)(body[1] | body[2] << 8);
        break;
    case AUDIO_PCM:
        if (m < 2 || m % 2) return AUDIO_E_LENGTH;
        ev->samples = m / 2;
        for (int i = 0; i < ev->samples; i++) pcm[i] = (int16_t)(uint16_t)(body[1 + 2 * i] | body[2 + 2 * i] << 8);
        break;
    case AUDIO_END:
        if (m != 0) return AUDIO_E_LENGTH;
        break;
    default:
        return AUDIO_E_TYPE;
    }
    ev->kind = body[0];
    return 0;
}
