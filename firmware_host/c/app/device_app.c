/* The whole device in C on audio compiled into the image (app_in.h, written by acom.firmware_host.device_c):
 * each clip is one stream through device_stream.c (front end -> graph -> packets -> the transport), as the
 * board would capture it; bench/device_cost.py counts its instructions and the tests compare its packets.
 * firmware_uart.c is the same device taking its audio from the UART instead. Prints
 * "stream I PACKETS BYTES FRAMES PAYLOAD_BYTES" per clip. */
#include <stdint.h>

#include "device_stream.h"
#include "io.h"
#include "transport.h"
#include "app_in.h"

int main(void) {
    if (transport_open() != 0) return 1;
    for (int i = 0; i < A_NCLIPS; i++) {
        device_report r;
        device_begin(A_CLIPS[i].stream_id);
        if (device_push(A_CLIPS[i].pcm, A_CLIPS[i].samples) != 0 || device_end(&r) != 0) return 1;
        long row[5] = {i, r.packets, r.bytes, r.frames, r.payload_bytes};
        io_numbers("stream", row, 5);
    }
    io_write("device: done\n");
    return 0;
}
