/*
 * The few STM32F405 and Cortex-M4 registers this example touches, as plain addresses.
 * Offsets and bit positions follow the STM32F405/407 reference manual (RM0090) and the
 * ARMv7-M architecture reference; nothing here comes from a vendor header.
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef STM32F405_REGS_H
#define STM32F405_REGS_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))

/* ---- Cortex-M4 system control space ------------------------------------------------ */
#define SYST_CSR REG32(0xE000E010u) /* SysTick control and status */
#define SYST_RVR REG32(0xE000E014u) /* reload value (24 bits) */
#define SYST_CVR REG32(0xE000E018u) /* current value */
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2) /* 1 = processor clock (HCLK) */

#define NVIC_ISER(n) REG32(0xE000E100u + 4u * (n)) /* interrupt set-enable */
#define NVIC_ICER(n) REG32(0xE000E180u + 4u * (n)) /* interrupt clear-enable */
#define NVIC_IPR(irq) REG8(0xE000E400u + (irq))    /* priority, one byte per IRQ */

#define SCB_ICSR REG32(0xE000ED04u)  /* interrupt control and state */
#define SCB_ICSR_PENDSTSET (1u << 26) /* the SysTick exception is pending */
#define SCB_SHPR3 REG32(0xE000ED20u) /* PendSV [23:16], SysTick [31:24] */
#define SCB_SHCSR REG32(0xE000ED24u)
#define SCB_CFSR REG32(0xE000ED28u)  /* configurable fault status */
#define SCB_HFSR REG32(0xE000ED2Cu)  /* hard fault status */
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define SCB_CPACR REG32(0xE000ED88u) /* coprocessor access: CP10/CP11 = FPU */
#define SCB_SHCSR_USGFAULTENA (1u << 18)
#define SCB_SHCSR_BUSFAULTENA (1u << 17)
#define SCB_SHCSR_MEMFAULTENA (1u << 16)

/* STM32F4 implements 4 priority bits (the upper nibble of each byte). */
#define NVIC_PRIO(p) ((uint8_t)((p) << 4))

/* ---- RCC (RM0090 section 7.3) ------------------------------------------------------ */
#define RCC_BASE 0x40023800u
#define RCC_CR REG32(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG32(RCC_BASE + 0x04u)
#define RCC_CFGR REG32(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG32(RCC_BASE + 0x30u)
#define RCC_AHB2ENR REG32(RCC_BASE + 0x34u)
#define RCC_APB1ENR REG32(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG32(RCC_BASE + 0x44u)

#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)

#define RCC_PLLCFGR_PLLM_POS 0u  /* [5:0] input divider */
#define RCC_PLLCFGR_PLLN_POS 6u  /* [14:6] VCO multiplier */
#define RCC_PLLCFGR_PLLP_POS 16u /* [17:16] 00 = /2, 01 = /4, ... */
#define RCC_PLLCFGR_PLLSRC_HSE (1u << 22)
#define RCC_PLLCFGR_PLLQ_POS 24u /* [27:24] PLL48CLK divider (USB OTG FS, SDIO, RNG) */

#define RCC_CFGR_SW_MASK (3u << 0)
#define RCC_CFGR_SW_PLL (2u << 0)
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_HPRE_MASK (0xFu << 4)    /* AHB prescaler, 0xxx = /1 */
#define RCC_CFGR_PPRE1_MASK (7u << 10)    /* APB1 prescaler */
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_MASK (7u << 13)    /* APB2 prescaler */
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)

#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB2ENR_RNGEN (1u << 6)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR_USART1EN (1u << 4)

/* ---- Flash interface (RM0090 section 3.9) ------------------------------------------ */
#define FLASH_ACR REG32(0x40023C00u)
#define FLASH_ACR_LATENCY_MASK 7u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

/* ---- PWR (RM0090 section 5.4) ------------------------------------------------------ */
#define PWR_CR REG32(0x40007000u)
#define PWR_CR_VOS (1u << 14) /* regulator scale 1: needed for 168 MHz */

/* ---- GPIO (RM0090 section 8.4) ----------------------------------------------------- */
#define GPIOA_BASE 0x40020000u
#define GPIO_MODER(b) REG32((b) + 0x00u)
#define GPIO_OSPEEDR(b) REG32((b) + 0x08u)
#define GPIO_PUPDR(b) REG32((b) + 0x0Cu)
#define GPIO_AFRL(b) REG32((b) + 0x20u)
#define GPIO_AFRH(b) REG32((b) + 0x24u)

/* ---- USART (RM0090 section 30.6) --------------------------------------------------- */
#define USART1_BASE 0x40011000u /* APB2; the first -serial of QEMU's netduinoplus2 */
#define USART2_BASE 0x40004400u /* APB1 */
#define USART_SR(b) REG32((b) + 0x00u)
#define USART_DR(b) REG32((b) + 0x04u)
#define USART_BRR(b) REG32((b) + 0x08u)
#define USART_CR1(b) REG32((b) + 0x0Cu)
#define USART_CR2(b) REG32((b) + 0x10u)
#define USART_CR3(b) REG32((b) + 0x14u)

#define USART_SR_PE (1u << 0)
#define USART_SR_FE (1u << 1)
#define USART_SR_NF (1u << 2)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)

#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)

#define USART1_IRQn 37u
#define USART2_IRQn 38u

/* ---- RNG (RM0090 section 24.4) ----------------------------------------------------- */
#define RNG_BASE 0x50060800u
#define RNG_CR REG32(RNG_BASE + 0x00u)
#define RNG_SR REG32(RNG_BASE + 0x04u)
#define RNG_DR REG32(RNG_BASE + 0x08u)
#define RNG_CR_RNGEN (1u << 2)
#define RNG_SR_DRDY (1u << 0)
#define RNG_SR_CECS (1u << 1) /* clock error, current state */
#define RNG_SR_SECS (1u << 2) /* seed error, current state */
#define RNG_SR_CEIS (1u << 5) /* clock error interrupt status (write 0 to clear) */
#define RNG_SR_SEIS (1u << 6) /* seed error interrupt status (write 0 to clear) */

/* ---- Device electronic signature (RM0090 section 39.1) ----------------------------- */
#define UID_BASE 0x1FFF7A10u /* 96-bit unique device id, 12 bytes */

/* ---- Small intrinsics -------------------------------------------------------------- */
static inline void cpu_wfi(void) { __asm__ volatile("wfi" ::: "memory"); }
static inline void cpu_dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
static inline void cpu_isb(void) { __asm__ volatile("isb 0xF" ::: "memory"); }
static inline void cpu_irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void cpu_irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

#endif /* STM32F405_REGS_H */
