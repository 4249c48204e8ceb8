/* The whole device in C: 16-bit audio -> the firmware front end (acom_frontend.c) -> the edge graph
 * (acom_graph.c, as the bundle exported it) -> packets (acom_wire.c) -> the transport (the UART on a
 * microcontroller). The clips and the stream settings come from app_in.h (acom.firmware_host.device_c);
 * on a board they would come from the microphone. One window of audio at a time, as the board would
 * capture it; the codes gather until a packet's worth (A_FPP frames) is there, as `acom send` cuts a stream,
 * and the last packet of a clip is flagged end of stream (the stream decides which packets are full and which
 * short). Prints "stream I PACKETS BYTES FRAMES PAYLOAD_BYTES" per clip. */
#include <stdint.h>

#include "acom_frontend.h"
#include "acom_graph.h"
#include "acom_wire.h"
#include "io.h"
#include "transport.h"
#include "app_in.h"

#ifndef ACOM_STAGES
#define ACOM_STAGES 3  /* what runs (bench/device_cost.py): 0 the audio only, 1 + front end, 2 + graph, 3 + packets */
#endif

static float audio[A_WINDOW], scratch[2 * 2048];
static int8_t features[ACOM_GRAPH_INPUT_SIZE];
static int32_t codes[ACOM_GRAPH_CODES_SIZE];
#define PER_WINDOW (ACOM_GRAPH_CODES_SIZE / A_NQ)  /* code frames per window */
#define HELD (A_FPP + PER_WINDOW)                   /* frames waiting for a packet, at most */
static uint16_t held[A_NQ * HELD];                  /* [A_NQ][HELD] */
static uint8_t packet[ACOM_MAX_PACKET];

/* Send the first n held frames (the stream's last packet when end), keep the rest; the packet's bytes or -1. */
static int send_held(acom_stream *s, int *count, int n, int end) {
    int len = acom_stream_packet(s, held, A_NQ, n, HELD, end, packet, sizeof packet);
    if (len < 0 || transport_send(packet, (size_t)len) != 0) return -1;
    for (int q = 0; q < A_NQ; q++)
        for (int t = n; t < *count; t++) held[q * HELD + t - n] = held[q * HELD + t];
    *count -= n;
    return len;
}

int main(void) {
    if (transport_open() != 0) return 1;
    for (int i = 0; i < A_NCLIPS; i++) {
        const a_clip *c = &A_CLIPS[i];
        acom_stream s = {.device_id = A_DEVICE, .stream_id = c->stream_id, .codebook_id = acom_codebook_id(A_HASH),
                         .codebook_sizes = A_SIZES, .priors = A_PRIORS, .key = A_KEY_LEN ? A_KEY : 0,
                         .key_len = A_KEY_LEN, .tag_len = A_TAG_LEN, .frames_per_packet = A_FPP, .n_q = A_NQ,
                         .full_every = A_FULL_EVERY};
        long bytes = 0, frames = 0;
        int count = 0, len = 0;
        for (int32_t start = 0; start < c->samples || start == 0; start += A_WINDOW) {
            for (int32_t k = 0; k < A_WINDOW; k++)  /* the last window zero-padded, as the exporter verified */
                audio[k] = start + k < c->samples ? (float)c->pcm[start + k] / 32768.f : 0.f;
            if (ACOM_STAGES >= 1 && acom_features_i8(&acom_frontend_config, audio, A_WINDOW, features, scratch) *
                    acom_frontend_config.n_mels != ACOM_GRAPH_INPUT_SIZE)
                return 1;
            if (ACOM_STAGES >= 2 && acom_graph_run(features, codes) != 0) return 1;
            /* only the frames of real audio are sent: the padding's codes never leave the device */
            int32_t left = (c->samples - start + A_SAMPLES_PER_CODE - 1) / A_SAMPLES_PER_CODE;
            int n = left < PER_WINDOW ? (int)left : PER_WINDOW;
            for (int q = 0; q < A_NQ; q++)
                for (int t = 0; t < n; t++) held[q * HELD + count + t] = (uint16_t)codes[q * PER_WINDOW + t];
            count += n;
            frames += n;
            int last = start + A_WINDOW >= c->samples;
            while (ACOM_STAGES >= 3 && (count > A_FPP || (count == A_FPP && !last))) {  /* a full packet, not the last */
                if ((len = send_held(&s, &count, A_FPP, 0)) < 0) return 1;
                bytes += len;
            }
            if (last) {  /* what is left (up to A_FPP frames) ends the stream */
                if (ACOM_STAGES >= 3 && (len = send_held(&s, &count, count, 1)) < 0) return 1;
                bytes += len;
                break;
            }
            if (ACOM_STAGES < 3) count = 0;  /* nothing is sent: nothing is held */
        }
        long row[5] = {i, (long)s.index, bytes, frames, (long)s.payload_bytes};
        io_numbers("stream", row, 5);
    }
    io_write("device: done\n");
    return 0;
}
