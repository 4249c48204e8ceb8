/* The device's work on one stream of 16-bit audio, shared by every application (device_app.c: clips compiled
 * in; firmware_uart.c: audio from the UART): samples gather into windows of the bundle's length; each window
 * goes through the firmware front end (acom_frontend.c) and the edge graph (acom_graph.c); the codes gather
 * until a packet's worth (A_FPP frames) is there and go out through transport.h as wire packets, the last of
 * the stream flagged end of stream. The stream settings (device id, key, tag length, frames per packet,
 * full_every, priors) are compiled in from app_settings.h (acom.firmware_host.device_c writes it). One stream
 * at a time; no allocation. */
#ifndef ACOM_DEVICE_STREAM_H
#define ACOM_DEVICE_STREAM_H
#include <stdint.h>

#define DEVICE_E_FRONTEND (-1)  /* the front end gave another number of features than the graph takes */
#define DEVICE_E_GRAPH (-2)     /* acom_graph_run failed */
#define DEVICE_E_PACKET (-3)    /* a packet could not be made or sent */
#define DEVICE_E_STATE (-4)     /* samples or an end outside a stream */

typedef struct {
    uint16_t stream_id;
    long packets, bytes, frames, payload_bytes;  /* sent so far: packets, their bytes, code frames, payload bytes */
} device_report;

/* Start a stream (the previous one must have ended). */
void device_begin(uint16_t stream_id);

/* Add n samples to the stream: every full window that is known not to be the last is run and its packets sent.
 * 0, or a DEVICE_E_* error (that window's codes are lost: end the stream). */
int device_push(const int16_t *pcm, int32_t n);

/* End the stream: its last window (zero-padded; empty for a stream without samples) is run and what is held
 * goes out as the end-of-stream packet. 0 or a DEVICE_E_* error; *report says what was sent either way. */
int device_end(device_report *report);

/* Samples one window of the graph takes. */
int32_t device_window_samples(void);
#endif
