/* How a device's packets leave it: a UDP datagram each (Linux boards) or a COBS frame each on a UART
 * (microcontrollers). */
#ifndef ACOM_TEST_TRANSPORT_H
#define ACOM_TEST_TRANSPORT_H
#include <stddef.h>
#include <stdint.h>
int transport_open(void);                                  /* 0 on success */
int transport_send(const uint8_t *packet, size_t len);     /* 0 on success */
#endif
