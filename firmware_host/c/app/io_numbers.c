/* io_numbers: "LABEL N1 N2 ...\n" through io_write, without printf (small firmware, no libc formatting);
 * io_format writes the same line (without the newline) into a buffer, for reports sent elsewhere. */
#include "io.h"

int io_format(char *line, const char *label, const long *values, int n) {
    char *q = line;
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
    *q = 0;
    return (int)(q - line);
}

void io_numbers(const char *label, const long *values, int n) {
    char line[IO_LINE];
    int len = io_format(line, label, values, n);
    line[len] = '\n';
    line[len + 1] = 0;
    io_write(line);
}
