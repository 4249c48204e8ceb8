/* The CMSDK APB UART of Arm's MPS2/MPS3 FPGA images (Arm DDI0479C) at UART_BASE, given by the build: the
 * registers transport_uart.c (TX) and audio_uart.c (RX) share. One byte of buffer each way, no FIFO. */
#ifndef ACOM_CMSDK_UART_H
#define ACOM_CMSDK_UART_H
#include <stdint.h>

#ifndef UART_BASE
#error "UART_BASE: the CMSDK UART's address on this machine"
#endif

typedef struct {
    volatile uint32_t data, state, ctrl, intstatus, bauddiv;
} cmsdk_uart;

#define UART ((cmsdk_uart *)UART_BASE)
#define UART_STATE_TX_FULL 1u     /* a byte waits to go out */
#define UART_STATE_RX_FULL 2u     /* a byte came in: reading data takes it */
#define UART_STATE_RX_OVERRUN 8u  /* a byte came while one was still held (write 1 to clear) */
#define UART_CTRL_TX 1u
#define UART_CTRL_RX 2u

/* The smallest divider the UART accepts (the emulator ignores the rate; a board sets its own). */
static inline void uart_setup(void) {
    if (UART->bauddiv < 16) UART->bauddiv = 16;
}
#endif
