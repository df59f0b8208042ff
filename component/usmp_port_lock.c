/*
 * Default lock hooks: usmp_port_lock / usmp_port_unlock guard the private state of one
 * usmp_t, so that one task may sit in usmp_recv while another sends on the same context.
 *
 * Every hook is a weak definition: define your own usmp_port_lock/usmp_port_unlock (for
 * example with a mutex of your RTOS kept next to the context) and it wins. The key is the
 * address of the usmp_t. The library takes the lock for short steps only (it never waits
 * on the network while holding it, except inside the transport's send), never takes it
 * twice and never holds two.
 *
 *   ESP-IDF (FreeRTOS)    a small table of FreeRTOS mutexes (static memory, created on
 *                         first use inside a critical section), chosen by the key's address
 *   POSIX / ESP-IDF linux a table of pthread mutexes, chosen by the key's address
 *   anything else         nothing: bare metal with one thread of execution (a superloop)
 *                         needs no lock; an RTOS there must define the hooks
 *
 * Contexts share a table entry when their addresses hash alike: that only makes two
 * connections wait for each other's short steps, never deadlock (one lock at a time).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#if defined(ESP_PLATFORM) && defined(__has_include)
#if __has_include("sdkconfig.h")
#include "sdkconfig.h"
#endif
#endif

#include "usmp.h"

#include <stdint.h>

#define USMP_WEAK __attribute__((weak))

#if defined(ESP_PLATFORM) && !defined(CONFIG_IDF_TARGET_LINUX)
#define USMP_LOCK_FREERTOS 1
#elif defined(__unix__) || defined(__APPLE__)
#define USMP_LOCK_PTHREAD 1
#endif

#if defined(USMP_LOCK_FREERTOS) || defined(USMP_LOCK_PTHREAD)
/* Which table entry guards the context at `key`. */
static unsigned lock_slot(const void *key, unsigned slots)
{
    uintptr_t a = (uintptr_t)key;
    a ^= a >> 7;
    a ^= a >> 13;
    return (unsigned)(a % slots);
}
#endif

#if defined(USMP_LOCK_FREERTOS)
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"

#define USMP_LOCK_SLOTS 4

static StaticSemaphore_t lock_mem[USMP_LOCK_SLOTS];
static SemaphoreHandle_t locks[USMP_LOCK_SLOTS];
static portMUX_TYPE lock_init_mux = portMUX_INITIALIZER_UNLOCKED;

static SemaphoreHandle_t lock_for(const void *key)
{
    unsigned i = lock_slot(key, USMP_LOCK_SLOTS);
    if (locks[i] == NULL) {
        taskENTER_CRITICAL(&lock_init_mux);
        if (locks[i] == NULL) {
            locks[i] = xSemaphoreCreateMutexStatic(&lock_mem[i]);
        }
        taskEXIT_CRITICAL(&lock_init_mux);
    }
    return locks[i];
}

USMP_WEAK void usmp_port_lock(const void *ctx)
{
    (void)xSemaphoreTake(lock_for(ctx), portMAX_DELAY);
}

USMP_WEAK void usmp_port_unlock(const void *ctx)
{
    (void)xSemaphoreGive(lock_for(ctx));
}

#elif defined(USMP_LOCK_PTHREAD)
#include <pthread.h>

#define USMP_LOCK_SLOTS 16

static pthread_mutex_t locks[USMP_LOCK_SLOTS] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER,
};

USMP_WEAK void usmp_port_lock(const void *ctx)
{
    (void)pthread_mutex_lock(&locks[lock_slot(ctx, USMP_LOCK_SLOTS)]);
}

USMP_WEAK void usmp_port_unlock(const void *ctx)
{
    (void)pthread_mutex_unlock(&locks[lock_slot(ctx, USMP_LOCK_SLOTS)]);
}

#else

USMP_WEAK void usmp_port_lock(const void *ctx)
{
    (void)ctx;
}

USMP_WEAK void usmp_port_unlock(const void *ctx)
{
    (void)ctx;
}

#endif
