/* Reset for the vector check on a bare Cortex-M (QEMU mps2/mps3 images): the vector table, the FPU enabled,
 * .bss cleared, then main. Code and data run from the RAM QEMU loads the ELF into (cortex_m.ld), so nothing is copied. */
#include <stdint.h>

#include "io.h"

extern uint32_t __bss_start__, __bss_end__, __stack_top__;
int main(void);

static void reset(void) {
#if defined(__ARM_FP)  /* built for the core's FPU (hard-float ABI): give the code access to it first */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: CP10 and CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    for (uint32_t *p = &__bss_start__; p < &__bss_end__; p++) *p = 0;
    io_exit(main());
}

static void fault(void) {
    io_write("fault\n");
    io_exit(2);
}

__attribute__((section(".vectors"), used)) static const void *const VECTORS[16] = {
    &__stack_top__, (void *)reset, (void *)fault, (void *)fault, (void *)fault, (void *)fault, (void *)fault};
