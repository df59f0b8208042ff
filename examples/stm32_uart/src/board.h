/*
 * Board bring-up for an STM32F405: clocks, the 1 ms SysTick, USART1 pins and interrupt,
 * the 96-bit unique id, stack accounting and how the program ends.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Clocks, RCC, SysTick, console, USART1 pins (PA9 TX / PA10 RX, AF7) and its NVIC line.
 * Returns false when the PLL did not start (the board then runs on the 16 MHz HSI, and the
 * RNG, which needs PLL48CLK, will report a clock error). */
bool board_init(void);

uint32_t board_millis(void); /* ms since board_init, wraps at 2^32 */
/* HCLK cycles since board_init (the 1 ms tick and SysTick's counter), wraps at 2^32
 * (25.5 s at 168 MHz): for timing short stretches of code. In QEMU the counter follows the
 * host's clock, so there it is emulated time, not executed instructions. Thread mode with
 * interrupts enabled (it masks them for a few instructions). */
uint32_t board_cycles(void);
void board_delay_ms(uint32_t ms);
uint32_t board_hclk_hz(void);
uint32_t board_pclk1_hz(void);
uint32_t board_pclk2_hz(void);

/* The 12 bytes of the unique device id (RM0090 section 39.1). The emulator build returns
 * a stand-in: QEMU maps nothing at 0x1FFF7A10 and a read there faults. */
void board_unique_id(uint8_t out[12]);

/* Stack painted at reset: bytes ever used, and the reserved size. */
size_t board_stack_used(void);
size_t board_stack_size(void);

/* Ends the program: with semihosting the host (QEMU, a debugger) gets `status` as its
 * exit code; without, the status is printed and the core sleeps. */
__attribute__((noreturn)) void board_exit(int status);

#endif /* BOARD_H */
