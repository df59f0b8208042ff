/*
 * Minimal Cortex-M4 start-up for the measurement firmware: a vector table with the
 * initial stack pointer and three handlers, .data/.bss set-up, FPU on (the library is
 * built for the hard-float ABI), then bench_main(); faults are reported over semihosting.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t bench_data_start, bench_data_end, bench_data_load;
extern uint32_t bench_bss_start, bench_bss_end, bench_stack_top;
int bench_main(void);

void Reset_Handler(void);
void Fault_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((section(".vectors"), used)) void (*const bench_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&bench_stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
};

__attribute__((noreturn)) void Reset_Handler(void)
{
    SCB_CPACR |= 0xFu << 20; /* CP10 + CP11: full access */
    __asm__ volatile("dsb\n isb" ::: "memory");
    const uint32_t *src = &bench_data_load;
    for (uint32_t *dst = &bench_data_start; dst < &bench_data_end;) *dst++ = *src++;
    for (uint32_t *dst = &bench_bss_start; dst < &bench_bss_end;) *dst++ = 0;
    sh_exit(bench_main());
}

__attribute__((noreturn)) void Fault_Handler(void)
{
    sh_puts("bench: FAULT (exception taken)\n");
    sh_exit(3);
}
