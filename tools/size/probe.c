/* Size probe: a minimal bare-metal program that calls the whole C API, so a real
 * --gc-sections link keeps exactly what an application using the library would.
 * tools/measure/measure.py checks that every usmp_* function of include/usmp.h (the
 * usmp_port_* hooks aside, which are defined here) is called below. */
#include "usmp.h"

int usmp_port_get_device_id(uint8_t *out, size_t len) { (void)out; (void)len; return 0; }
int usmp_port_random(uint8_t *out, size_t len) { (void)out; (void)len; return 0; }
void usmp_port_delay_ms(uint32_t ms) { (void)ms; }
uint32_t usmp_port_millis(void) { return 0; }
void usmp_port_log(char level, const char *tag, const char *msg) { (void)level; (void)tag; (void)msg; }
/* One thread of execution: the bare-metal default (component/usmp_port_lock.c) does nothing. */
void usmp_port_lock(const void *ctx) { (void)ctx; }
void usmp_port_unlock(const void *ctx) { (void)ctx; }

/* The transport lives behind pointers the linker cannot see through. */
extern usmp_transport_t probe_transport;
usmp_transport_t probe_transport;
static uint8_t buf[USMP_MAX_MESSAGE_LEN];
static usmp_t ctx;
static usmp_stats_t stats;
static usmp_defaults_t defaults;
volatile int sink;

int main(void) {
  sink = usmp_set_defaults(&defaults);
#ifndef USMP_PROBE_NB_ONLY
  /* The blocking session calls (left out for a superloop application: measure.py size
   * --nb-only). */
  sink = usmp_connect(&ctx, &probe_transport);
  sink = usmp_send(&ctx, buf, sizeof buf);
  sink = usmp_recv(&ctx, buf, sizeof buf);
  sink = usmp_ping(&ctx);
  sink = usmp_keepalive_tick(&ctx);
  sink = usmp_rekey(&ctx);
  sink = usmp_reconnect(&ctx);
  usmp_close(&ctx);
#endif
  sink = usmp_is_connected(&ctx);
  sink = usmp_get_stats(&ctx, &stats);
  sink = usmp_frame_size(buf, 12);
  sink = usmp_device_id_from_seed(buf, 16, buf);
  sink = (int)(uintptr_t)usmp_err_name(sink);
  sink = (int)(uintptr_t)usmp_get_version();
  usmp_set_log_level(USMP_LOG_LEVEL_INFO);
  sink = (int)usmp_get_log_level();
#if defined(USMP_PROBE_NB) || defined(USMP_PROBE_NB_ONLY)
  /* The non-blocking API: not in the default figure (an application uses it instead of the
   * blocking calls, or next to them); measure.py size --nb adds it. */
  static usmp_nb_t nb;
  static usmp_event_t ev;
  sink = usmp_nb_connect(&ctx, &nb, &probe_transport, buf, sizeof buf);
  sink = usmp_nb_poll(&ctx, &nb, &ev);
  sink = usmp_nb_send(&ctx, &nb, buf, 16);
  sink = usmp_nb_ping(&ctx, &nb);
  sink = usmp_nb_rekey(&ctx, &nb);
  sink = usmp_nb_close(&ctx, &nb);
#endif
#ifdef USMP_FEATURE_UART
  /* The UART transport is a transport, like the socket transports of component/: not in
   * the default figure (BENCHMARKS.md measures it on its own); -DUSMP_FEATURE_UART adds it. */
  static usmp_uart_ctx_t uart;
  static usmp_uart_io_t io;
  sink = usmp_transport_uart_init(&probe_transport, &uart, &io);
#endif
  return 0;
}

void Reset_Handler(void) { main(); for (;;) {} }
