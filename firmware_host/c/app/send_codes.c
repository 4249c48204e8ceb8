/* A device in C: sends the streams of codes in codes_in.h (written by acom.firmware_host.device_c) as packets
 * through transport.h, as `acom send` does: acom_stream_packet per packet (full or short as the stream
 * decides), the last of a stream flagged. Prints "stream I PACKETS BYTES PAYLOAD_BYTES" per stream; exit
 * status 0 when every packet went out. The model half (audio -> codes) is not in C yet: the codes are
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
        acom_stream s = {.device_id = c->device_id, .stream_id = c->stream_id, .codebook_id = acom_codebook_id(C_HASH),
                         .codebook_sizes = C_SIZES, .priors = C_PRIORS, .key = C_KEY_LEN ? C_KEY : NULL,
                         .key_len = C_KEY_LEN, .tag_len = C_TAG_LEN, .frames_per_packet = C_FRAMES_PER_PACKET,
                         .n_q = C_NQ, .full_every = C_FULL_EVERY};
        long bytes = 0;
        int t = 0;
        do {  /* a stream without frames is one empty packet, as Python's sender.stream_packets sends it */
            int n = c->t - t < C_FRAMES_PER_PACKET ? c->t - t : C_FRAMES_PER_PACKET;
            int len = acom_stream_packet(&s, c->codes + t, C_NQ, n, c->t, t + n >= c->t, packet, sizeof packet);
            if (len < 0 || transport_send(packet, (size_t)len) != 0) {
                io_write("send_codes: a packet failed\n");
                return 1;
            }
            bytes += len;
            t += n;
        } while (t < c->t);
        long row[4] = {i, (long)s.index, bytes, (long)s.payload_bytes};  /* what went out */
        io_numbers("stream", row, 4);
    }
    io_write("send_codes: done\n");
    return 0;
}
