/* The whole device in C: 16-bit audio -> the firmware front end (acom_frontend.c) -> the edge graph
 * (acom_graph.c, as the bundle exported it) -> packets (acom_wire.c) -> the transport (the UART on a
 * microcontroller). The clips and the stream settings come from app_in.h (acom.firmware_host.device_c);
 * on a board they would come from the microphone. One window of audio at a time, as the board would
 * capture it; each window's codes go out as one packet, the last packet of a clip flagged end of stream.
 * Prints "stream I PACKETS BYTES FRAMES" per clip. */
#include <stdint.h>

#include "acom_frontend.h"
#include "acom_graph.h"
#include "acom_wire.h"
#include "io.h"
#include "transport.h"
#include "app_in.h"

static float audio[A_WINDOW], scratch[2 * 2048];
static int8_t features[ACOM_GRAPH_INPUT_SIZE];
static int32_t codes[ACOM_GRAPH_CODES_SIZE];
static uint16_t packed[ACOM_GRAPH_CODES_SIZE];
static uint8_t packet[ACOM_MAX_PACKET];

int main(void) {
    if (transport_open() != 0) return 1;
    const int per_window = ACOM_GRAPH_CODES_SIZE / A_NQ;  /* code frames per window */
    for (int i = 0; i < A_NCLIPS; i++) {
        const a_clip *c = &A_CLIPS[i];
        acom_stream s = {A_DEVICE, c->stream_id, acom_codebook_id(A_HASH), A_SIZES, A_KEY_LEN ? A_KEY : 0,
                         A_KEY_LEN, A_FULL_EVERY, 0, 0, 0};
        long bytes = 0, frames = 0;
        for (int32_t start = 0; start < c->samples; start += A_WINDOW) {
            for (int32_t k = 0; k < A_WINDOW; k++)  /* the last window zero-padded, as the exporter verified */
                audio[k] = start + k < c->samples ? (float)c->pcm[start + k] / 32768.f : 0.f;
            if (acom_features_i8(&acom_frontend_config, audio, A_WINDOW, features, scratch) * acom_frontend_config.n_mels
                    != ACOM_GRAPH_INPUT_SIZE || acom_graph_run(features, codes) != 0)
                return 1;
            /* only the frames of real audio are sent: the padding's codes never leave the device */
            int32_t left = (c->samples - start + A_SAMPLES_PER_CODE - 1) / A_SAMPLES_PER_CODE;
            int n = left < per_window ? (int)left : per_window;
            for (int q = 0; q < A_NQ; q++)
                for (int t = 0; t < per_window; t++) packed[q * per_window + t] = (uint16_t)codes[q * per_window + t];
            int end = start + A_WINDOW >= c->samples;
            int len = acom_stream_packet(&s, packed, A_NQ, n, per_window, end, packet, sizeof packet);
            if (len < 0 || transport_send(packet, (size_t)len) != 0) return 1;
            bytes += len;
            frames += n;
        }
        long row[4] = {i, (long)s.index, bytes, frames};
        io_numbers("stream", row, 4);
    }
    io_write("device: done\n");
    return 0;
}
