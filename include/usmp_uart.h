/*
 * Ready-made byte hooks for the UART transport (usmp_transport_uart_init in usmp.h): a
 * POSIX serial port (component/usmp_uart_posix.c) and ESP-IDF's uart_driver
 * (component/usmp_uart_esp32.c). On bare metal, write the two hooks for your USART
 * instead (examples/stm32_uart/src/stm32_usart.c is one).
 *
 *   static usmp_uart_ctx_t uart;                 // the transport's storage: no heap
 *   usmp_uart_io_t io = {0};                     // COBS framing, default timeouts
 *   usmp_uart_posix_open(&io, "/dev/ttyUSB0", 115200);
 *   usmp_transport_uart_init(&tr, &uart, &io);   // a datagram transport
 *   usmp_connect(&ctx, &tr);                     // ... tr.destroy(&tr) closes the port
 *
 * The far end of the line is `usmp bridge --serial DEV --gateway HOST:PORT` on the host
 * next to it (COBS datagrams to the gateway's UDP port; `--raw` for raw framing and TCP).
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef USMP_UART_H
#define USMP_UART_H

#include "usmp.h"

#ifndef USMP_FEATURE_UART
#error "usmp_uart.h: this usmp was built without the UART transport (CMake USMP_UART=ON, ESP-IDF CONFIG_USMP_UART, or define USMP_FEATURE_UART when libusmp.a has it)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * POSIX: opens the serial device `path` (a tty, a USB adapter, a pty) raw, 8N1, no flow
 * control, at `baud` (a standard rate: 9600 ... 4000000; 0 keeps the current rate) and
 * fills io->read, write, available, close and user. Other members of *io (framing,
 * timeouts) are left as they are. The hooks wait with poll(); the close hook (called by
 * the transport's destroy) closes the descriptor. Returns 0, or -1 with errno set and
 * nothing open.
 */
int usmp_uart_posix_open(usmp_uart_io_t *io, const char *path, uint32_t baud);

/**
 * POSIX: as usmp_uart_posix_open, for a descriptor that is already open (a pty master,
 * a socket pair in a test). The descriptor is set non-blocking; the close hook closes it.
 */
int usmp_uart_posix_from_fd(usmp_uart_io_t *io, int fd);

/**
 * ESP-IDF: installs uart_driver on the port, pins and baud rate of menuconfig
 * ("Component config -> USMP -> UART transport") and sets up *t over it with the
 * framing chosen there, in the caller's storage *ctx. Returns 0, or -1 when the driver
 * could not be installed (the reason is logged). The hooks it uses,
 * usmp_uart_esp32_read and usmp_uart_esp32_write (user = the uart_port_t), are weak:
 * an application may define its own.
 */
int usmp_transport_uart_esp32_init(usmp_transport_t *t, usmp_uart_ctx_t *ctx);

/** ESP-IDF: the default read hook (uart_read_bytes; user = (void *)(intptr_t)port). */
int usmp_uart_esp32_read(void *user, uint8_t *buf, size_t len, uint32_t timeout_ms);

/** ESP-IDF: the default write hook (uart_write_bytes, then uart_wait_tx_done). */
int usmp_uart_esp32_write(void *user, const uint8_t *data, size_t len, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* USMP_UART_H */
