/*
 * Cortex-M platform: semihosting stdio, a 64-bit SysTick tick counter (instructions under
 * QEMU -icount shift=0, converted on the host), the painted-stack high-water mark, and exit.
 */
#include <stdint.h>

#include "nl_platform.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NL_RELOAD 0x00FFFFFFu
#define NL_PAINT 0x5AFEC0DEu

extern void initialise_monitor_handles(void);
extern uint32_t __stack_bottom[];
extern uint32_t __stack_top[];

static volatile uint32_t nl_wraps;

void SysTick_Handler(void) { nl_wraps++; }

void nl_platform_init(void)
{
    initialise_monitor_handles();
    SYST_RVR = NL_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enable */
}

uint64_t nl_ticks(void)
{
    uint32_t w0, w1, v;
    do {
        w0 = nl_wraps;
        v = SYST_CVR;
        w1 = nl_wraps;
    } while (w0 != w1);
    return (uint64_t)w0 * (NL_RELOAD + 1u) + (NL_RELOAD - v);
}

uint32_t nl_stack_high_water(void)
{
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == NL_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* Semihosting SYS_EXIT_EXTENDED: QEMU exits with `code` as its status. */
void nl_exit(int code)
{
    static volatile uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

void _init(void) {}
void _fini(void) {}
