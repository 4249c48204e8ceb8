/* Where the device's 16-bit audio comes from: a stream of events, START (a stream id), PCM (samples) and END.
 * audio_uart.c reads them from the UART as the host sends them (docs/firmware.md: COBS frames, a type byte, a
 * CRC-16); a microphone driver (audio_mic_template.c says what it must do) gives one START at open and then PCM
 * for ever. firmware_uart.c runs the device on them. */
#ifndef ACOM_AUDIO_IN_H
#define ACOM_AUDIO_IN_H
#include <stdint.h>

#define AUDIO_START 1  /* a stream begins: ev->stream_id */
#define AUDIO_PCM 2    /* ev->samples samples were written to pcm (16-bit, the bundle's sample rate, mono) */
#define AUDIO_END 3    /* the stream ends */

/* Errors (negative returns). A bad frame is skipped whole; the next call reads the frame after it. */
#define AUDIO_E_FRAMING (-1)   /* not valid COBS */
#define AUDIO_E_SIZE (-2)      /* a frame longer than AUDIO_MAX_FRAME (dropped as it arrived) or shorter than 3 bytes */
#define AUDIO_E_CRC (-3)       /* the frame's CRC-16 does not match its bytes */
#define AUDIO_E_TYPE (-4)      /* a type byte other than START, PCM, END */
#define AUDIO_E_LENGTH (-5)    /* a body of the wrong length for its type (an odd PCM byte count, a START not of 2) */
#define AUDIO_E_OVERRUN (-6)   /* the receiver lost a byte (a byte came before the last was read) */
#define AUDIO_E_DEVICE (-7)    /* the audio device failed (a microphone driver's own failure) */
#define AUDIO_E_TEMPLATE (-8)  /* audio_mic_template.c: no driver was written yet */

#define AUDIO_MAX_SAMPLES 256  /* samples one PCM event carries at most (pcm's capacity must be at least this) */

typedef struct {
    int kind;            /* AUDIO_START, AUDIO_PCM or AUDIO_END */
    uint16_t stream_id;  /* AUDIO_START */
    int samples;         /* AUDIO_PCM: samples written to pcm */
} audio_event;

/* Start receiving audio. 0, or a negative AUDIO_E_* error. */
int audio_open(void);

/* Wait for the next event; PCM samples go to pcm (room for AUDIO_MAX_SAMPLES). 0, or a negative AUDIO_E_*
 * error for a bad frame (reported by the caller, then skipped: the next call goes on with the next frame). */
int audio_read(audio_event *ev, int16_t *pcm);
#endif
