/* io_numbers: "LABEL N1 N2 ...\n" through io_write, without printf (small firmware, no libc formatting). */
#include "io.h"

void io_numbers(const char *label, const long *values, int n) {
    char line[160], *q = line;
    for (const char *s = label; *s && q < line + 40;) *q++ = *s++;
    for (int k = 0; k < n && k < 8; k++) {
        char d[24];
        int m = 0;
        unsigned long u = values[k] < 0 ? 0ul - (unsigned long)values[k] : (unsigned long)values[k];
        *q++ = ' ';
        if (values[k] < 0) *q++ = '-';
        do d[m++] = (char)('0' + u % 10); while ((u /= 10));
        while (m) *q++ = d[--m];
    }
    *q++ = '\n';
    *q = 0;
    io_write(line);
}
