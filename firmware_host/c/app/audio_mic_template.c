/* audio_in.h for a microphone: a TEMPLATE to fill in for your board. Built by the tests (so it keeps compiling
 * against audio_in.h) and run there: until it is written, audio_open says AUDIO_E_TEMPLATE and firmware_uart.c
 * reports "#error template 1" on its UART and stops.
 *
 * What the driver must do (an I2S microphone, or a PDM one through the part's PDM-to-PCM filter or a CIC/FIR
 * decimator of your own):
 *   audio_open  clock the microphone at the bundle's sample rate (the manifest's sample_rate, 16 kHz for the
 *               shipped models), mono, 16-bit (the top 16 bits of a 24/32-bit I2S slot); start a circular DMA
 *               into a ring buffer with half- and full-transfer interrupts. Return 0, or AUDIO_E_DEVICE.
 *   audio_read  first call: ev->kind = AUDIO_START with a stream id of your choice (a counter kept in backup
 *               RAM or flash, so a reboot starts a new stream); after that AUDIO_PCM with up to
 *               AUDIO_MAX_SAMPLES samples copied out of the ring each call, blocking (WFI) until a DMA half is
 *               ready. Never AUDIO_END for a device left on (send AUDIO_END and a new AUDIO_START to cut a
 *               long session, e.g. once an hour). Return AUDIO_E_OVERRUN when the DMA overtook the reader (the
 *               samples lost: the stream goes on shorter), AUDIO_E_DEVICE when the peripheral failed.
 * Timing it must meet: firmware_uart.c calls audio_read only between windows. While a window runs (the front
 * end, the graph and the packets: `python bench/device_cost.py` counts its instructions; divide by the core's
 * clock) the DMA keeps filling the ring, so the ring must hold that time's samples plus one DMA half: with a
 * window computed in T seconds at 16 kHz, at least 16000 x T + half samples (e.g. T = 0.3 s: 4,800 + 256
 * samples, ~10 KiB). The device keeps up only if T stays under the window's length (window_s of the board,
 * 1 s): otherwise the ring overflows whatever its size. Everything else in the firmware is unchanged. */
#include "audio_in.h"

int audio_open(void) { return AUDIO_E_TEMPLATE; }

int audio_read(audio_event *ev, int16_t *pcm) {
    (void)ev;
    (void)pcm;
    return AUDIO_E_TEMPLATE;
}
