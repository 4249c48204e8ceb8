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


int main(void) {
    if (transport_open() != 0) {
        io_write("send_codes: cannot open the transport\n");
        return 1;
    }
    for (int i = 0; i < C_NSTREAMS; i++) {
        const c_stream *c = &C_STREAMS[i];
        acom_stream s = {c->device_id, c->stream_id, acom_codebook_id(C_HASH), C_SIZES, C_KEY_LEN ? C_KEY : NULL,
                         C_KEY_LEN, C_FULL_EVERY, 0, 0, 0, C_PRIORS};
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
        long row[3] = {i, (long)s.index, bytes};  /* "stream I PACKETS BYTES": what went out */
        io_numbers("stream", row, 3);
    }
    io_write("send_codes: done\n");
    return 0;
}
