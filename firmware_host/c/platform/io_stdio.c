/* io.h on a hosted platform (Linux on the build machine or a Raspberry Pi, under qemu-aarch64 here). */
#include <stdio.h>
#include <stdlib.h>

#include "io.h"

void io_write(const char *text) { fputs(text, stdout); }

void io_exit(int status) {
    fflush(stdout);
    exit(status);
}
