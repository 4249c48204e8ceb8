/* io.h on a bare Cortex-M under qemu-system-arm -semihosting: Arm semihosting calls (bkpt 0xAB), so the
 * firmware needs no UART driver to report. A board without a debugger attached would hang on bkpt: this
 * file is for the emulator and debug probes only. */
#include <stdint.h>

#include "io.h"

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void io_write(const char *text) { semihost(0x04, text); } /* SYS_WRITE0 */

void io_exit(int status) {
    /* SYS_EXIT: ADP_Stopped_ApplicationExit makes QEMU exit 0; RunTimeErrorUnknown makes it exit 1 */
    semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026u : 0x20023u));
    for (;;) {
    }
}
