/*
 * Startup for the STM32F405: vector table, reset handler (FPU on, .data copied, .bss
 * zeroed, stack painted for the high-water mark), fault reporting.
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdint.h>

#include "board.h"
#include "console.h"
#include "stm32f405_regs.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);

#define STACK_PAINT 0x57AC57ACu
#define EXIT_FAULT 3

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);

/* Everything not defined elsewhere lands in Default_Handler. */
#define WEAK_ALIAS __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_ALIAS;
void SVC_Handler(void) WEAK_ALIAS;
void DebugMon_Handler(void) WEAK_ALIAS;
void PendSV_Handler(void) WEAK_ALIAS;
void SysTick_Handler(void) WEAK_ALIAS;
void USART1_IRQHandler(void) WEAK_ALIAS;
void USART2_IRQHandler(void) WEAK_ALIAS;
void RNG_IRQHandler(void) WEAK_ALIAS; /* shared with HASH on the F415/F417 */

typedef void (*vector_t)(void);

/* 16 system exceptions + 82 interrupts (IRQ 0..81, the last being the FPU's). */
#define NUM_IRQS 82u
__attribute__((section(".isr_vector"), used)) const vector_t g_vectors[16u + NUM_IRQS] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16u + USART1_IRQn] = USART1_IRQHandler,
    [16u + USART2_IRQn] = USART2_IRQHandler,
    [16u + 80u] = RNG_IRQHandler,
};

__attribute__((noreturn)) void Reset_Handler(void)
{
    /* FPU first: the code is built for the hard-float ABI (CP10 + CP11 full access). */
    SCB_CPACR |= (0xFu << 20);
    cpu_dsb();
    cpu_isb();

    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    /* Paint the stack below the current frame, so board_stack_used() can find the
     * deepest point the program ever reached. */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &_sstack; p < sp - 16; p++) {
        *p = STACK_PAINT;
    }

    int status = main();
    board_exit(status);
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    console_printf("FATAL: unexpected exception %lu (IRQ %ld)\n", (unsigned long)ipsr,
                   (long)ipsr - 16);
    board_exit(EXIT_FAULT);
}

/* Called with the exception stack frame: r0-r3, r12, lr, pc, xpsr. */
__attribute__((noreturn, used)) void fault_report(const uint32_t *frame, uint32_t kind)
{
    static const char *const names[] = {"HardFault", "MemManage", "BusFault", "UsageFault"};
    console_printf("FATAL: %s at pc=0x%08lx lr=0x%08lx CFSR=0x%08lx HFSR=0x%08lx "
                   "BFAR=0x%08lx MMFAR=0x%08lx\n",
                   names[kind & 3u], (unsigned long)frame[6], (unsigned long)frame[5],
                   (unsigned long)SCB_CFSR, (unsigned long)SCB_HFSR, (unsigned long)SCB_BFAR,
                   (unsigned long)SCB_MMFAR);
    board_exit(EXIT_FAULT);
}

/* Pick the stack the frame was pushed on (EXC_RETURN bit 2), pass the fault kind. */
#define FAULT_ENTRY(name, kind)                                                            \
    __attribute__((naked)) void name(void)                                                 \
    {                                                                                      \
        __asm__ volatile("tst lr, #4\n"                                                    \
                         "ite eq\n"                                                        \
                         "mrseq r0, msp\n"                                                 \
                         "mrsne r0, psp\n"                                                 \
                         "movs r1, #" #kind "\n"                                           \
                         "b fault_report\n");                                              \
    }
FAULT_ENTRY(HardFault_Handler, 0)
FAULT_ENTRY(MemManage_Handler, 1)
FAULT_ENTRY(BusFault_Handler, 2)
FAULT_ENTRY(UsageFault_Handler, 3)
