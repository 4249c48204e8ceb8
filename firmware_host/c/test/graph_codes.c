/* Runs the generated edge graph (acom_graph.c from export/c_graph.py) on the windows in graph_in.h: int8
 * feature windows (G_INPUT), or 16-bit audio windows (G_AUDIO) through the firmware front end first
 * (acom_frontend.c; it also prints "features I HEX"). Prints "codes I C0 C1 ..." per window, and "probe I HEX"
 * (the probed int8 tensor) when the graph was generated with one, for the host to compare. */
#include <stdint.h>

#include "acom_graph.h"
#include "graph_in.h"
#include "io.h"
#ifdef G_AUDIO_SAMPLES
#include "acom_frontend.h"
#endif

static char *put_int(char *q, int32_t v) {
    char d[12];
    int n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0) *q++ = '-';
    do d[n++] = (char)('0' + u % 10); while ((u /= 10));
    while (n) *q++ = d[--n];
    return q;
}

#if defined(ACOM_GRAPH_PROBE_SIZE) || defined(G_AUDIO_SAMPLES)
/* the longest line: the features (an input) or the probed tensor, whichever is larger */
#if defined(ACOM_GRAPH_PROBE_SIZE) && ACOM_GRAPH_PROBE_SIZE > ACOM_GRAPH_INPUT_SIZE
#define HEX_BYTES ACOM_GRAPH_PROBE_SIZE
#else
#define HEX_BYTES ACOM_GRAPH_INPUT_SIZE
#endif
static void put_hex(const char *label, int i, const int8_t *p, int n) {
    static char hex[24 + 2 * HEX_BYTES];
    char *q = hex;
    for (const char *s = label; *s;) *q++ = *s++;
    q = put_int(q, i);
    *q++ = ' ';
    for (int k = 0; k < n; k++) {
        uint8_t b = (uint8_t)p[k];
        *q++ = "0123456789abcdef"[b >> 4];
        *q++ = "0123456789abcdef"[b & 15];
    }
    *q++ = '\n';
    *q = 0;
    io_write(hex);
}
#endif

int main(void) {
    static int32_t codes[ACOM_GRAPH_CODES_SIZE];
    static char line[16 + 12 * ACOM_GRAPH_CODES_SIZE];
    for (int i = 0; i < G_N; i++) {
#ifdef G_AUDIO_SAMPLES
        static float audio[G_AUDIO_SAMPLES], scratch[4096];
        static int8_t input[ACOM_GRAPH_INPUT_SIZE];
        for (int k = 0; k < G_AUDIO_SAMPLES; k++) audio[k] = (float)G_AUDIO[i][k] / 32768.f;
        if (acom_features_i8(&acom_frontend_config, audio, G_AUDIO_SAMPLES, input, scratch) *
                acom_frontend_config.n_mels != ACOM_GRAPH_INPUT_SIZE)
            return 1;
        put_hex("features ", i, input, ACOM_GRAPH_INPUT_SIZE);
#else
        const int8_t *input = G_INPUT[i];
#endif
        if (acom_graph_run(input, codes) != 0) return 1;
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
        put_hex("probe ", i, (const int8_t *)acom_graph_probe, ACOM_GRAPH_PROBE_SIZE);
#endif
    }
    io_write("done\n");
    return 0;
}
