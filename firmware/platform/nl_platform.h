/* What main.c needs from the platform: timing, stack measurement and exit, host or Cortex-M. */
#ifndef NL_PLATFORM_H
#define NL_PLATFORM_H

#include <stdint.h>

void nl_platform_init(void);
/* SysTick ticks since init on Cortex-M (0 on the host). */
uint64_t nl_ticks(void);
/* Deepest stack use so far in bytes, from stack painting (0 on the host). */
uint32_t nl_stack_high_water(void);

#endif /* NL_PLATFORM_H */
