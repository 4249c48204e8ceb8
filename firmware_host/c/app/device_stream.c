/* device_stream.h: one window at a time -> front end -> graph -> packets. A full window is run when the next
 * sample arrives (so it is known not to be the last) or at the end; only the frames of real audio are sent:
 * the zero padding's codes never leave the device, as the exporter verified. */
#include "device_stream.h"

#include "acom_frontend.h"
#include "acom_graph.h"
#include "acom_wire.h"
#include "app_settings.h"
#include "transport.h"

#ifndef ACOM_STAGES
#define ACOM_STAGES 3  /* what runs (bench/device_cost.py): 0 the audio only, 1 + front end, 2 + graph, 3 + packets */
#endif

static float audio[A_WINDOW], scratch[2 * 2048];  /* the window's samples as the front end takes them */
static int8_t features[ACOM_GRAPH_INPUT_SIZE];
static int32_t codes[ACOM_GRAPH_CODES_SIZE];
#define PER_WINDOW (ACOM_GRAPH_CODES_SIZE / A_NQ)  /* code frames per window */
#define HELD (A_FPP + PER_WINDOW)                   /* frames waiting for a packet, at most */
static uint16_t held[A_NQ * HELD];                  /* [A_NQ][HELD] */
static uint8_t packet[ACOM_MAX_PACKET];

static acom_stream stream;
static device_report sent;
static int32_t filled;  /* samples in audio */
static int count, in_stream = 0;  /* frames held; whether a stream is open */

int32_t device_window_samples(void) { return A_WINDOW; }

void device_begin(uint16_t stream_id) {
    acom_stream s = {.device_id = A_DEVICE, .stream_id = stream_id, .codebook_id = acom_codebook_id(A_HASH),
                     .codebook_sizes = A_SIZES, .priors = A_PRIORS, .key = A_KEY_LEN ? A_KEY : 0,
                     .key_len = A_KEY_LEN, .tag_len = A_TAG_LEN, .frames_per_packet = A_FPP, .n_q = A_NQ,
                     .full_every = A_FULL_EVERY};
    device_report r = {.stream_id = stream_id};
    stream = s;
    sent = r;
    filled = count = 0;
    in_stream = 1;
}

/* Send the first n held frames (the stream's last packet when end), keep the rest; 0 or DEVICE_E_PACKET. */
static int send_held(int n, int end) {
    int len = acom_stream_packet(&stream, held, A_NQ, n, HELD, end, packet, sizeof packet);
    if (len < 0 || transport_send(packet, (size_t)len) != 0) return DEVICE_E_PACKET;
    for (int q = 0; q < A_NQ; q++)
        for (int t = n; t < count; t++) held[q * HELD + t - n] = held[q * HELD + t];
    count -= n;
    sent.packets++;
    sent.bytes += len;
    return 0;
}

/* The window (its first `real` samples audio, the rest zeroed here) through the stages; `last` ends the stream. */
static int run_window(int32_t real, int last) {
    for (int32_t k = real; k < A_WINDOW; k++) audio[k] = 0.f;
    if (ACOM_STAGES >= 1 && acom_features_i8(&acom_frontend_config, audio, A_WINDOW, features, scratch) *
            acom_frontend_config.n_mels != ACOM_GRAPH_INPUT_SIZE)
        return DEVICE_E_FRONTEND;
    if (ACOM_STAGES >= 2 && acom_graph_run(features, codes) != 0) return DEVICE_E_GRAPH;
    int32_t left = (real + A_SAMPLES_PER_CODE - 1) / A_SAMPLES_PER_CODE;
    int n = left < PER_WINDOW ? (int)left : PER_WINDOW;
    for (int q = 0; q < A_NQ; q++)
        for (int t = 0; t < n; t++) held[q * HELD + count + t] = (uint16_t)codes[q * PER_WINDOW + t];
    count += n;
    sent.frames += n;
    int err = 0;
    while (!err && ACOM_STAGES >= 3 && (count > A_FPP || (count == A_FPP && !last)))  /* a full packet, not the last */
        err = send_held(A_FPP, 0);
    if (!err && last && ACOM_STAGES >= 3) err = send_held(count, 1);  /* what is left (up to A_FPP frames) ends it */
    if (ACOM_STAGES < 3 || err) count = 0;  /* nothing is sent, or a packet failed: nothing is held (no overflow) */
    sent.payload_bytes = (long)stream.payload_bytes;
    return err;
}

int device_push(const int16_t *pcm, int32_t n) {
    if (!in_stream) return DEVICE_E_STATE;
    for (int32_t i = 0; i < n; i++) {
        if (filled == A_WINDOW) {  /* more audio follows: that window was not the last */
            int err = run_window(A_WINDOW, 0);
            filled = 0;
            if (err) return err;
        }
        audio[filled++] = (float)pcm[i] / 32768.f;
    }
    return 0;
}

int device_end(device_report *report) {
    int err = in_stream ? run_window(filled, 1) : DEVICE_E_STATE;
    in_stream = 0;
    *report = sent;
    return err;
}
