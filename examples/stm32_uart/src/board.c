/*
 * STM32F405 bring-up, register level (RM0090). SPDX-License-Identifier: Apache-2.0
 */
#include "board.h"

#include <string.h>

#include "console.h"
#include "semihosting.h"
#include "stm32f405_regs.h"
#include "usmp_stm32_config.h"

/* Target clock tree: HSI 16 MHz / PLLM 8 = 2 MHz into the VCO, x PLLN 168 = 336 MHz;
 * SYSCLK = VCO / PLLP 2 = 168 MHz, PLL48CLK = VCO / PLLQ 7 = 48 MHz (the RNG's clock).
 * AHB /1 = 168 MHz, APB1 /4 = 42 MHz (max 42), APB2 /2 = 84 MHz (max 84). */
#define PLL_M 8u
#define PLL_N 168u
#define PLL_Q 7u
#define FLASH_WAIT_STATES 5u /* 168 MHz at 2.7-3.6 V */
#define HSI_HZ 16000000u
#define PLL_HCLK_HZ 168000000u

/* Bounded waits on ready flags: about 0.1-1 s at 16 MHz, never forever. */
#define READY_SPINS 2000000u

#define STACK_PAINT 0x57AC57ACu
extern uint32_t _sstack; /* linker script: lowest address of the stack */
extern uint32_t _estack; /* initial SP */

static volatile uint32_t g_ms;
static uint32_t g_hclk = HSI_HZ;
static uint32_t g_pclk1 = HSI_HZ;
static uint32_t g_pclk2 = HSI_HZ;

void SysTick_Handler(void)
{
    g_ms++;
}

uint32_t board_millis(void) { return g_ms; }
uint32_t board_hclk_hz(void) { return g_hclk; }
uint32_t board_pclk1_hz(void) { return g_pclk1; }
uint32_t board_pclk2_hz(void) { return g_pclk2; }

uint32_t board_cycles(void)
{
    cpu_irq_disable();
    uint32_t ms = g_ms;
    uint32_t cvr = SYST_CVR;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        /* The counter has wrapped and the tick is not counted yet: count it, and take the
         * counter again (it may have been read just before the wrap). */
        ms++;
        cvr = SYST_CVR;
    }
    cpu_irq_enable();
    uint32_t per_ms = SYST_RVR + 1u;
    return ms * per_ms + (per_ms - 1u - cvr);
}

void board_delay_ms(uint32_t ms)
{
    uint32_t start = g_ms;
    while ((uint32_t)(g_ms - start) < ms) {
        cpu_wfi(); /* the 1 ms tick wakes us */
    }
}

#if !USMP_STM32_EMULATOR
static bool wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < READY_SPINS; i++) {
        if ((*reg & mask) == want) {
            return true;
        }
    }
    return false;
}

/* HSI -> PLL -> 168 MHz. Returns false (still on HSI) when a ready flag never comes. */
static bool clock_init(void)
{
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR |= PWR_CR_VOS;

    RCC_CR |= RCC_CR_HSION;
    if (!wait_set(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY)) {
        return false;
    }
    RCC_CR &= ~RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, 0)) {
        return false;
    }
    /* Keep the reserved bits of PLLCFGR at their reset values: change only the fields. */
    const uint32_t fields = (0x3Fu << RCC_PLLCFGR_PLLM_POS) | (0x1FFu << RCC_PLLCFGR_PLLN_POS) |
                            (3u << RCC_PLLCFGR_PLLP_POS) | RCC_PLLCFGR_PLLSRC_HSE |
                            (0xFu << RCC_PLLCFGR_PLLQ_POS);
    RCC_PLLCFGR = (RCC_PLLCFGR & ~fields) | (PLL_M << RCC_PLLCFGR_PLLM_POS) |
                  (PLL_N << RCC_PLLCFGR_PLLN_POS) | (0u << RCC_PLLCFGR_PLLP_POS) |
                  (PLL_Q << RCC_PLLCFGR_PLLQ_POS);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        return false;
    }
    /* Flash wait states before the clock goes up. */
    FLASH_ACR = FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN | FLASH_WAIT_STATES;
    if ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_WAIT_STATES) {
        return false;
    }
    RCC_CFGR = (RCC_CFGR & ~(RCC_CFGR_HPRE_MASK | RCC_CFGR_PPRE1_MASK | RCC_CFGR_PPRE2_MASK)) |
               RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2;
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
    if (!wait_set(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        return false;
    }
    g_hclk = PLL_HCLK_HZ;
    g_pclk1 = PLL_HCLK_HZ / 4u;
    g_pclk2 = PLL_HCLK_HZ / 2u;
    return true;
}
#else
/* EMULATOR ONLY: QEMU's netduinoplus2 does not model the RCC (its registers read as
 * zero, so every ready-flag wait above would time out) and runs the core at a fixed
 * 168 MHz. The emulator build assumes the clock tree clock_init() sets up on hardware. */
static bool clock_init(void)
{
    g_hclk = PLL_HCLK_HZ;
    g_pclk1 = PLL_HCLK_HZ / 4u;
    g_pclk2 = PLL_HCLK_HZ / 2u;
    return true;
}
#endif

static void systick_init(void)
{
    SYST_CSR = 0;
    SYST_RVR = g_hclk / 1000u - 1u; /* 168000 - 1 fits the 24-bit reload */
    SYST_CVR = 0;
    SCB_SHPR3 = (SCB_SHPR3 & 0x00FFFFFFu) | ((uint32_t)NVIC_PRIO(2) << 24);
    SYST_CSR = SYST_CSR_CLKSOURCE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

static void usart1_pins_init(void)
{
    /* PA9 = USART1_TX, PA10 = USART1_RX, both AF7; pull-up on RX so a floating line
     * does not produce framing noise. */
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR;
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~((3u << 18) | (3u << 20))) |
                             (2u << 18) | (2u << 20);
    GPIO_OSPEEDR(GPIOA_BASE) |= (2u << 18) | (2u << 20);
    GPIO_PUPDR(GPIOA_BASE) = (GPIO_PUPDR(GPIOA_BASE) & ~(3u << 20)) | (1u << 20);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~((0xFu << 4) | (0xFu << 8))) |
                            (7u << 4) | (7u << 8);
    /* USART1 above SysTick: a byte must never wait for the tick. */
    NVIC_IPR(USART1_IRQn) = NVIC_PRIO(1);
    NVIC_ISER(USART1_IRQn / 32u) = 1u << (USART1_IRQn % 32u);
}

bool board_init(void)
{
    /* Precise bus/usage/memory faults instead of everything escalating to HardFault. */
    SCB_SHCSR |= SCB_SHCSR_USGFAULTENA | SCB_SHCSR_BUSFAULTENA | SCB_SHCSR_MEMFAULTENA;
    bool clocks = clock_init();
    systick_init();
    console_init();
    usart1_pins_init();
    cpu_irq_enable();
    return clocks;
}

void board_unique_id(uint8_t out[12])
{
#if USMP_STM32_EMULATOR
    /* EMULATOR ONLY: a stand-in with the layout of a real id (X/Y on the wafer, wafer
     * number, 7 ASCII bytes of lot number); set it with -DUSMP_STM32_EMU_UID=<24 hex>. */
    static const uint8_t stand_in[12] = USMP_STM32_EMU_UID;
    memcpy(out, stand_in, sizeof stand_in);
#else
    for (unsigned i = 0; i < 3u; i++) {
        uint32_t w = REG32(UID_BASE + 4u * i); /* word reads, as the manual describes */
        out[4u * i + 0u] = (uint8_t)w;
        out[4u * i + 1u] = (uint8_t)(w >> 8);
        out[4u * i + 2u] = (uint8_t)(w >> 16);
        out[4u * i + 3u] = (uint8_t)(w >> 24);
    }
#endif
}

size_t board_stack_size(void)
{
    return (size_t)((uintptr_t)&_estack - (uintptr_t)&_sstack);
}

size_t board_stack_used(void)
{
    const uint32_t *p = &_sstack;
    const uint32_t *end = &_estack;
    while (p < end && *p == STACK_PAINT) {
        p++;
    }
    return (size_t)((uintptr_t)end - (uintptr_t)p);
}

void board_exit(int status)
{
#if USMP_STM32_SEMIHOSTING
    sh_exit(status);
#else
    console_printf("exit status %d\n", status);
    cpu_irq_disable();
    for (;;) {
        cpu_wfi();
    }
#endif
}
