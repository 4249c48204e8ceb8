/* transport.h over UDP on Linux: one datagram per packet to ACOM_SEND_TO ("127.0.0.1:PORT", an IPv4 address). */
#define _POSIX_C_SOURCE 200112L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static int sock = -1;
static struct sockaddr_in to;

int transport_open(void) {
    const char *spec = getenv("ACOM_SEND_TO");
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    char host[64];
    if (!colon || (size_t)(colon - spec) >= sizeof host) return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) return -1;
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    return sock < 0 ? -1 : 0;
}

int transport_send(const uint8_t *packet, size_t len) {
    return sendto(sock, packet, len, 0, (const struct sockaddr *)&to, sizeof to) == (ssize_t)len ? 0 : -1;
}
