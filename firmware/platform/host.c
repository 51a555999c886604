/* Host platform: nothing to set up, no tick counter and no painted stack to measure. */
#include "nl_platform.h"

void nl_platform_init(void) {}

uint64_t nl_ticks(void) { return 0; }

uint32_t nl_stack_high_water(void) { return 0; }
