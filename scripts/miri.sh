#!/usr/bin/env bash
# Miri, the undefined-behaviour checker, over the core's unit tests and over the fuzz
# harness replay (fuzz/tests/replay.rs), which drives the unsafe code of the C API through
# streams, datagrams, fragments, REKEY both ways, copied and moved contexts and reconnects.
# Miri needs a nightly toolchain with its component: installed here when rustup can fetch
# it; when it cannot, this says so and skips (the rest of the suite still runs).
# USMP_MIRI_REPLAY_MAX caps the corpus inputs per target (an X25519 takes about a minute
# under Miri).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  timeout 600 rustup toolchain install nightly --profile minimal --component miri,rust-src \
    >/dev/null 2>&1 || true
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  echo "miri: SKIPPED: no nightly toolchain with the miri component on this machine"
  exit 0
fi
cargo +nightly miri --version
cargo +nightly miri test --features std --lib --target-dir target/miri
# usmp_connect(ctx, &ctx->transport): no aliasing references (issue H item 5). The
# scripted gateway leaks its PSK on purpose (a 'static borrow for its responder).
MIRIFLAGS=-Zmiri-ignore-leaks cargo +nightly miri test --features std --test capi --target-dir target/miri \
  connect_reads_a_transport_that_is_the_contexts_own_field
# The non-blocking API: its state in application memory (a union, raw pointers to the
# application's buffers), the byte-stream reader, usmp_is_connected on a shared reference.
MIRIFLAGS=-Zmiri-ignore-leaks cargo +nightly miri test --features std --test nb --target-dir target/miri \
  -- refusals_are_named_and_change_nothing a_frame_cut_off_midway
python3 fuzz/seed_corpus.py >/dev/null
cd fuzz
MIRIFLAGS=-Zmiri-disable-isolation USMP_REPLAY_MAX="${USMP_MIRI_REPLAY_MAX:-1}" \
  cargo +nightly miri test --test replay --target-dir ../target/miri-fuzz
