/* transport.h on the UART of Arm's MPS2/MPS3 FPGA images (a CMSDK APB UART at UART_BASE, given by the build):
 * each packet COBS-framed, the bytes written as the transmit buffer frees. Enabling transmit keeps the receiver
 * as audio_uart.c set it (the two share the UART). */
#include "../acom_wire.h"
#include "cmsdk_uart.h"
#include "transport.h"

int transport_open(void) {
    uart_setup();
    UART->ctrl |= UART_CTRL_TX;
    return 0;
}

int transport_send(const uint8_t *packet, size_t len) {
    static uint8_t frame[ACOM_MAX_SERIAL];
    int n = acom_frame_serial(packet, len, frame, sizeof frame);
    for (int i = 0; i < n; i++) {
        while (UART->state & UART_STATE_TX_FULL) {
        }
        UART->data = frame[i];
    }
    return n < 0 ? -1 : 0;
}
