/*
 * nlpool Cortex-M startup: vector table, FPU enable where the core has one (before any C runs, since
 * the compiler may emit FP instructions anywhere), .data copy, .bss clear, stack painting for the high-water mark.
 * Every fault exception reports over semihosting and exits QEMU with status 70.
 */
    .syntax unified
    .thumb

    .section .vectors, "a"
    .align 2
    .global __vectors
__vectors:
    .word __stack_top
    .word Reset_Handler
    .word Fault_Handler     /* NMI */
    .word Fault_Handler     /* HardFault */
    .word Fault_Handler     /* MemManage */
    .word Fault_Handler     /* BusFault */
    .word Fault_Handler     /* UsageFault */
    .word Fault_Handler     /* SecureFault (v8-M) */
    .word 0
    .word 0
    .word 0
    .word Fault_Handler     /* SVC */
    .word Fault_Handler     /* DebugMon */
    .word 0
    .word Fault_Handler     /* PendSV */
    .word SysTick_Handler

    .text
    .thumb_func
    .global Reset_Handler
    .type Reset_Handler, %function
Reset_Handler:
#if defined(__ARM_FP)
    ldr r0, =0xE000ED88         /* CPACR: full access to CP10 and CP11 (cores with an FPU only) */
    ldr r1, [r0]
    ldr r2, =(0xF << 20)
    orrs r1, r1, r2
    str r1, [r0]
    dsb
    isb
#endif
    /* Thumb-1 instructions only below: the same code runs on Armv6-M (Cortex-M0+) and Armv7/8-M. */
    ldr r0, =__data_start
    ldr r1, =__data_end
    ldr r2, =__data_load
1:  cmp r0, r1
    bhs 2f
    ldr r3, [r2]
    str r3, [r0]
    adds r2, r2, #4
    adds r0, r0, #4
    b 1b
2:  ldr r0, =__bss_start
    ldr r1, =__bss_end
    movs r3, #0
3:  cmp r0, r1
    bhs 4f
    str r3, [r0]
    adds r0, r0, #4
    b 3b
4:  ldr r0, =__stack_bottom     /* nothing is on the stack yet: paint all of it */
    ldr r1, =__stack_top
    ldr r3, =0x5AFEC0DE
5:  cmp r0, r1
    bhs 6f
    str r3, [r0]
    adds r0, r0, #4
    b 5b
6:  bl main
    bl nl_exit
7:  b 7b

    .thumb_func
    .global Fault_Handler
    .type Fault_Handler, %function
Fault_Handler:
    ldr r0, =__stack_top        /* the fault may be a stack overflow: start a fresh stack */
    mov sp, r0
    movs r0, #0x04              /* SYS_WRITE0 */
    ldr r1, =fault_msg
    bkpt 0xab
    movs r0, #0x20              /* SYS_EXIT_EXTENDED */
    ldr r1, =fault_exit
    bkpt 0xab
8:  b 8b

    .section .rodata
    .align 2
fault_exit:
    .word 0x20026               /* ADP_Stopped_ApplicationExit */
    .word 70
fault_msg:
    .asciz "NLPOOL_FAULT: the firmware took a fault exception (HardFault, bus or usage fault)\n"
