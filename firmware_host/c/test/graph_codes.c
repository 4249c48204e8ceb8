/* Runs the generated edge graph (acom_graph.c from export/c_graph.py) on the int8 feature windows in
 * graph_in.h and prints "codes I C0 C1 ..." per window, and "probe I HEX" (the probed int8 tensor) when the
 * graph was generated with one, for the host to compare with TFLite's reference kernels. */
#include <stdint.h>

#include "acom_graph.h"
#include "graph_in.h"
#include "io.h"

static char *put_int(char *q, int32_t v) {
    char d[12];
    int n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0) *q++ = '-';
    do d[n++] = (char)('0' + u % 10); while ((u /= 10));
    while (n) *q++ = d[--n];
    return q;
}

int main(void) {
    static int32_t codes[ACOM_GRAPH_CODES_SIZE];
    static char line[16 + 12 * ACOM_GRAPH_CODES_SIZE];
    for (int i = 0; i < G_N; i++) {
        if (acom_graph_run(G_INPUT[i], codes) != 0) return 1;
        char *q = line;
        for (const char *s = "codes "; *s;) *q++ = *s++;
        q = put_int(q, i);
        for (int k = 0; k < ACOM_GRAPH_CODES_SIZE; k++) {
            *q++ = ' ';
            q = put_int(q, codes[k]);
        }
        *q++ = '\n';
        *q = 0;
        io_write(line);
#ifdef ACOM_GRAPH_PROBE_SIZE
        static char hex[16 + 2 * ACOM_GRAPH_PROBE_SIZE];
        q = hex;
        for (const char *s = "probe "; *s;) *q++ = *s++;
        q = put_int(q, i);
        *q++ = ' ';
        for (int k = 0; k < ACOM_GRAPH_PROBE_SIZE; k++) {
            uint8_t b = (uint8_t)acom_graph_probe[k];
            *q++ = "0123456789abcdef"[b >> 4];
            *q++ = "0123456789abcdef"[b & 15];
        }
        *q++ = '\n';
        *q = 0;
        io_write(hex);
#endif
    }
    io_write("done\n");
    return 0;
}
