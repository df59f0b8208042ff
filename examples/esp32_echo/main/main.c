/*
 * esp32_echo: joins Wi-Fi, connects to a USMP gateway over TCP, sends a message every
 * EXAMPLE_SEND_INTERVAL_MS and checks that the gateway echoes it back. Between messages
 * usmp_keepalive_tick keeps the session alive; a lost session (gateway restart, Wi-Fi
 * drop) is re-established with usmp_reconnect.
 *
 * Wire version, keepalive period and log level come from menuconfig ("Component config ->
 * USMP") through usmp_config_defaults(); Wi-Fi, gateway and PSK from "Example
 * configuration". With "USMP -> Gateway discovery" on, the gateway is found on the network
 * (usmp_discover: DNS-SD over mDNS) instead of being configured: the PSK is all it needs.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include <stdio.h>
#include <string.h>

#include "sdkconfig.h"

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#ifndef CONFIG_IDF_TARGET_LINUX
#include "esp_event.h"
#include "esp_netif.h"
#include "esp_wifi.h"
#include "freertos/event_groups.h"
#include "nvs_flash.h"
#endif

#include "usmp.h"
#include "usmp_config.h"
#ifdef CONFIG_EXAMPLE_GATEWAY_DISCOVER
#include "usmp_discovery.h"
#endif

static const char *TAG = "esp32_echo";

#define RETRY_DELAY_MS 2000u
#define ECHO_WAIT_MS 10000u /* an echo not back by then is reported as lost */
static uint8_t s_rx[USMP_MAX_MESSAGE_LEN];
static uint8_t s_tx[USMP_MAX_MESSAGE_LEN];

/* ----------------------------------------------------------------------------------- */
/* Wi-Fi station                                                                       */

#ifdef CONFIG_IDF_TARGET_LINUX

/* IDF_TARGET=linux: the host's network is up already. */
static void wifi_up(void)
{
}

#else

#define NET_UP_BIT BIT0

static EventGroupHandle_t s_net;

static void on_net_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        esp_wifi_connect();
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        xEventGroupClearBits(s_net, NET_UP_BIT);
        ESP_LOGW(TAG, "Wi-Fi disconnected, joining again");
        esp_wifi_connect();
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *ev = (const ip_event_got_ip_t *)data;
        ESP_LOGI(TAG, "got address " IPSTR, IP2STR(&ev->ip_info.ip));
        xEventGroupSetBits(s_net, NET_UP_BIT);
    }
}

/* Copies a NUL-terminated string into a fixed Wi-Fi config field (truncating). */
static void copy_field(uint8_t *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Starts the station and waits until it has an address. */
static void wifi_up(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);

    s_net = xEventGroupCreate();
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();

    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_net_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_net_event, NULL));

    wifi_config_t sta;
    memset(&sta, 0, sizeof sta);
    copy_field(sta.sta.ssid, sizeof sta.sta.ssid, CONFIG_EXAMPLE_WIFI_SSID);
    copy_field(sta.sta.password, sizeof sta.sta.password, CONFIG_EXAMPLE_WIFI_PASSWORD);
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &sta));
    ESP_ERROR_CHECK(esp_wifi_start());

    ESP_LOGI(TAG, "joining \"%s\"", CONFIG_EXAMPLE_WIFI_SSID);
    xEventGroupWaitBits(s_net, NET_UP_BIT, pdFALSE, pdTRUE, portMAX_DELAY);
}

#endif /* CONFIG_IDF_TARGET_LINUX */

/* ----------------------------------------------------------------------------------- */
/* The session                                                                         */

/* Where the gateway is: found on the network, or the configured address. */
static char s_host[USMP_TRANSPORT_HOST_MAX];
static int s_port;

static void locate_gateway(uint8_t wire_version)
{
#ifdef CONFIG_EXAMPLE_GATEWAY_DISCOVER
    usmp_discover_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.services = USMP_DISCOVER_TCP;      /* this example dials TCP */
    opts.protocol_version = wire_version;   /* skip gateways announcing another version */
    opts.instance = CONFIG_EXAMPLE_GATEWAY_INSTANCE[0] != 0 ? CONFIG_EXAMPLE_GATEWAY_INSTANCE : NULL;
    usmp_gateway_info_t gw;
    int rc;
    while ((rc = usmp_discover(&opts, &gw, NULL)) != USMP_OK) {
        ESP_LOGW(TAG, "no gateway found (%s), asking again in %u ms", usmp_err_name(rc),
                 (unsigned)RETRY_DELAY_MS);
        usmp_port_delay_ms(RETRY_DELAY_MS);
    }
    ESP_LOGI(TAG, "found gateway \"%s\" at %s:%u", gw.instance, gw.host, (unsigned)gw.port);
    snprintf(s_host, sizeof s_host, "%s", gw.host);
    s_port = gw.port;
#else
    (void)wire_version;
    snprintf(s_host, sizeof s_host, "%s", CONFIG_EXAMPLE_GATEWAY_HOST);
    s_port = CONFIG_EXAMPLE_GATEWAY_PORT;
#endif
}

/* The first connect: the transport dials, then the handshake. Retries until both work. */
static void first_connect(usmp_t *ctx, usmp_transport_t *tr)
{
    locate_gateway(ctx->protocol_version);
    while (usmp_transport_tcp_init(tr, s_host, s_port) != 0) {
        ESP_LOGW(TAG, "gateway %s:%d unreachable, again in %u ms", s_host, s_port,
                 (unsigned)RETRY_DELAY_MS);
        usmp_port_delay_ms(RETRY_DELAY_MS);
    }
    for (;;) {
        int rc = usmp_connect(ctx, tr);
        if (rc == USMP_OK) {
            return;
        }
        ESP_LOGW(TAG, "usmp_connect: %s (%d)", usmp_err_name(rc), rc);
        usmp_port_delay_ms(RETRY_DELAY_MS);
        /* A failed handshake closed the socket: dial again before the next try. */
        while (tr->reconnect(tr) != 0) {
            usmp_port_delay_ms(RETRY_DELAY_MS);
        }
    }
}

/* As the original quickstart: reconnect until it works. */
static void reconnect(usmp_t *ctx)
{
    int rc;
    while ((rc = usmp_reconnect(ctx)) != USMP_OK) {
        ESP_LOGW(TAG, "usmp_reconnect: %s (%d), again in %u ms", usmp_err_name(rc), rc,
                 (unsigned)RETRY_DELAY_MS);
        usmp_port_delay_ms(RETRY_DELAY_MS);
    }
    ESP_LOGI(TAG, "session re-established");
}

static void echo_task(void *arg)
{
    (void)arg;
    static const char psk[] = CONFIG_EXAMPLE_PSK;
    usmp_transport_t tr;
    usmp_t ctx = {0};
    usmp_config_defaults(&ctx); /* wire version, keepalive: menuconfig -> USMP */
    ctx.psk = (const uint8_t *)psk;
    ctx.psk_len = sizeof psk - 1;

    first_connect(&ctx, &tr);
    ESP_LOGI(TAG, "connected to %s:%d (usmp %s, wire v%d, keepalive %u ms)", s_host, s_port,
             usmp_get_version(),
             ctx.protocol_version == USMP_PROTOCOL_V1 ? 1 : 2, (unsigned)ctx.keepalive_ms);

    unsigned counter = 0;
    size_t pending = 0; /* length of the message whose echo is awaited, 0 = none */
    uint32_t sent_at = 0;
    uint32_t next_send = usmp_port_millis();
    for (;;) {
        uint32_t now = usmp_port_millis();
        if (pending != 0 && now - sent_at >= ECHO_WAIT_MS) {
            ESP_LOGW(TAG, "no echo within %u ms", (unsigned)ECHO_WAIT_MS);
            pending = 0;
        }
        if (pending == 0 && (int32_t)(now - next_send) >= 0) {
            int len = snprintf((char *)s_tx, sizeof s_tx, "hello from %s #%u", CONFIG_IDF_TARGET,
                               counter++);
            pending = (len > 0) ? (size_t)len : 0;
            sent_at = now;
            next_send = now + CONFIG_EXAMPLE_SEND_INTERVAL_MS;
            int rc = usmp_send(&ctx, s_tx, (uint16_t)pending);
            if (rc != USMP_OK) {
                ESP_LOGW(TAG, "usmp_send: %s (%d)", usmp_err_name(rc), rc);
                pending = 0;
                reconnect(&ctx);
                continue;
            }
        }

        /* Waits up to the transport's receive timeout (1 s): > 0 message, 0 nothing. */
        int n = usmp_recv(&ctx, s_rx, (uint16_t)sizeof s_rx);
        if (n > 0) {
            if (pending != 0 && (size_t)n == pending && memcmp(s_rx, s_tx, pending) == 0) {
                ESP_LOGI(TAG, "echo ok: \"%.*s\"", n, (const char *)s_rx);
            } else {
                ESP_LOGW(TAG, "unexpected message of %d bytes", n);
            }
            pending = 0;
        }
        /* A PING when keepalive_ms passed without traffic; an error means the session is
         * gone (the gateway's PINGs are answered inside usmp_recv). */
        int rc = (n < 0) ? n : usmp_keepalive_tick(&ctx);
        if (rc != USMP_OK) {
            ESP_LOGW(TAG, "session lost: %s (%d)", usmp_err_name(rc), rc);
            pending = 0;
            reconnect(&ctx);
        }
    }
}

void app_main(void)
{
    wifi_up();
    xTaskCreate(echo_task, "usmp_echo", CONFIG_EXAMPLE_TASK_STACK_SIZE, NULL, 5, NULL);
}
