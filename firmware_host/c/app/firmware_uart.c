/* The device as firmware: audio from audio_in.h (the UART's frames, audio_uart.c, or a microphone driver), each
 * stream through device_stream.c (front end -> graph -> packets on the UART, as device_app.c sends its clips),
 * for ever. What it says goes on the same UART as COBS frames that begin with '#' (a wire decoder refuses them,
 * with reason magic or size: `acom serve` counts them and goes on); docs/firmware.md lists them:
 *   #ready WINDOW_SAMPLES                                     at start
 *   #stream STREAM_ID PACKETS BYTES FRAMES PAYLOAD_BYTES      after each stream's last packet
 *   #error NAME ERRORS                                        a bad frame (skipped) or a failed stream; ERRORS: so far
 * A bad frame is counted and skipped; samples or an END outside a stream are errors ("order"); a START inside a
 * stream ends that stream first. Nothing here waits on anything but the next byte: bad input cannot hang it. */
#include <stdint.h>

#include "audio_in.h"
#include "device_stream.h"
#include "io.h"
#include "transport.h"

static long errors;

static void report(const char *label, const long *values, int n) {
    char line[IO_LINE + 1];
    line[0] = '#';
    int len = io_format(line + 1, label, values, n);
    transport_send((const uint8_t *)line, (size_t)len + 1);
}

static const char *error_name(int audio, int device) {
    static const char *const names[] = {"framing", "size", "crc", "type", "length", "overrun", "device",
                                        "template"};
    static const char *const device_names[] = {"frontend", "graph", "packet", "order"};
    if (device) return device <= -1 && device >= -4 ? device_names[-device - 1] : "device";
    return audio <= -1 && audio >= -8 ? names[-audio - 1] : "audio";
}

static void report_error(int audio, int device) {
    char label[48] = "error ";
    const char *name = error_name(audio, device);
    int i = 6;
    while (*name && i < 47) label[i++] = *name++;
    label[i] = 0;
    long n = ++errors;
    report(label, &n, 1);
}

/* End the open stream and say what it sent. */
static void end_stream(void) {
    device_report r;
    int err = device_end(&r);
    if (err) report_error(0, err);
    long row[5] = {r.stream_id, r.packets, r.bytes, r.frames, r.payload_bytes};
    report("stream", row, 5);
}

int main(void) {
    static int16_t pcm[AUDIO_MAX_SAMPLES];
    int streaming = 0, err = transport_open();
    if (err == 0 && (err = audio_open()) != 0) report_error(err, 0);
    if (err) return 1;
    long window = device_window_samples();
    report("ready", &window, 1);
    for (;;) {
        audio_event ev;
        if ((err = audio_read(&ev, pcm)) != 0) {
            report_error(err, 0);
            if (err == AUDIO_E_DEVICE) return 1;  /* the microphone is gone: nothing more will come */
            continue;
        }
        if (ev.kind == AUDIO_START) {
            if (streaming) {
                report_error(0, DEVICE_E_STATE);
                end_stream();
            }
            device_begin(ev.stream_id);
            streaming = 1;
        } else if (!streaming) {
            report_error(0, DEVICE_E_STATE);
        } else if (ev.kind == AUDIO_PCM && (err = device_push(pcm, ev.samples)) != 0) {
            report_error(0, err);
            end_stream();
            streaming = 0;
        } else if (ev.kind == AUDIO_END) {
            end_stream();
            streaming = 0;
        }
    }
}
