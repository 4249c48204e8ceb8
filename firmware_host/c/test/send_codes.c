/* A device in C: sends the streams of codes in codes_in.h (written by acom.firmware_host.wire_c) as packets
 * through transport.h, as `acom send` does: acom_stream_packet per packet, the last of a stream flagged.
 * Exit status 0 when every packet went out. The model half (audio -> codes) is not in C yet: the codes are
 * the ones the model computed on the host. */
#include <stddef.h>
#include <stdint.h>

#include "../acom_wire.h"
#include "io.h"
#include "transport.h"
#include "codes_in.h"

static uint8_t packet[ACOM_MAX_PACKET];

/* "stream I PACKETS BYTES\n": what went out, for the host to report */
static void report(int i, long packets, long bytes) {
    long v[3] = {i, packets, bytes};
    char line[64] = "stream", *q = line + 6;
    for (int k = 0; k < 3; k++) {
        char d[20];
        int n = 0;
        do d[n++] = (char)('0' + v[k] % 10); while ((v[k] /= 10));
        *q++ = ' ';
        while (n) *q++ = d[--n];
    }
    *q++ = '\n';
    *q = 0;
    io_write(line);
}

int main(void) {
    if (transport_open() != 0) {
        io_write("send_codes: cannot open the transport\n");
        return 1;
    }
    for (int i = 0; i < C_NSTREAMS; i++) {
        const c_stream *c = &C_STREAMS[i];
        acom_stream s = {c->device_id, c->stream_id, acom_codebook_id(C_HASH), C_SIZES, C_KEY_LEN ? C_KEY : NULL,
                         C_KEY_LEN, C_FULL_EVERY, 0, 0, 0};
        long bytes = 0;
        for (int t = 0; t < c->t; t += C_FRAMES_PER_PACKET) {
            int n = c->t - t < C_FRAMES_PER_PACKET ? c->t - t : C_FRAMES_PER_PACKET;
            int len = acom_stream_packet(&s, c->codes + t, C_NQ, n, c->t, t + n >= c->t, packet, sizeof packet);
            if (len < 0 || transport_send(packet, (size_t)len) != 0) {
                io_write("send_codes: a packet failed\n");
                return 1;
            }
            bytes += len;
        }
        report(i, (long)s.index, bytes);
    }
    io_write("send_codes: done\n");
    return 0;
}
