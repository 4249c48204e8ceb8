/* transport.h on the UART of Arm's MPS2/MPS3 FPGA images (a CMSDK APB UART at UART_BASE, given by the build):
 * each packet COBS-framed, the bytes written as the transmit buffer frees. */
#include "../acom_wire.h"
#include "transport.h"

#ifndef UART_BASE
#error "UART_BASE: the CMSDK UART's address on this machine"
#endif

typedef struct {
    volatile uint32_t data, state, ctrl, intstatus, bauddiv;
} cmsdk_uart;

#define UART ((cmsdk_uart *)UART_BASE)

int transport_open(void) {
    UART->bauddiv = 16;  /* the smallest divider the UART accepts; the emulator ignores the rate */
    UART->ctrl = 1;      /* transmit enabled */
    return 0;
}

int transport_send(const uint8_t *packet, size_t len) {
    static uint8_t frame[ACOM_MAX_SERIAL];
    int n = acom_frame_serial(packet, len, frame, sizeof frame);
    for (int i = 0; i < n; i++) {
        while (UART->state & 1) {  /* transmit buffer full */
        }
        UART->data = frame[i];
    }
    return n < 0 ? -1 : 0;
}
