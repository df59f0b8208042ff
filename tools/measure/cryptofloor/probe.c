/* Links every entry point of the crypto floor (tools/measure/cryptofloor) behind pointers
 * the linker cannot see through, like tools/size/probe.c does for the library. */
#include <stddef.h>
#include <stdint.h>

int cf_x25519(uint8_t *out, const uint8_t *k, const uint8_t *u);
void cf_hmac(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen, uint8_t *out);
int cf_hkdf(const uint8_t *salt, size_t slen, const uint8_t *ikm, size_t ilen, const uint8_t *info,
            size_t nlen, uint8_t *out, size_t olen);
int cf_gcm(int dir, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, size_t alen,
           uint8_t *buf, size_t len, uint8_t *tag);

extern uint8_t *volatile cf_buf;
uint8_t *volatile cf_buf;
volatile int cf_sink;

int main(void) {
  uint8_t *b = cf_buf;
  cf_sink = cf_x25519(b, b + 32, NULL);
  cf_sink = cf_x25519(b, b + 32, b + 64);
  cf_hmac(b, 32, b + 32, 100, b + 64);
  cf_sink = cf_hkdf(b, 32, b + 32, 32, b + 64, 20, b + 96, 64);
  cf_sink = cf_gcm(0, b, b + 32, b + 44, 10, b + 64, 452, b + 16);
  cf_sink = cf_gcm(1, b, b + 32, b + 44, 10, b + 64, 452, b + 16);
  return 0;
}

void Reset_Handler(void) { main(); for (;;) {} }
