#!/usr/bin/env bash
# Run the whole test suite: check formatting and lints, start the project's own
# PostgreSQL and RabbitMQ (scripts/services.sh), build the binaries, then run every test.
# Extra arguments go to `cargo nextest run` (or `cargo test` if nextest is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The code standard holds by itself: formatting and every lint (including missing docs).
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

exports="$(scripts/services.sh up)"
eval "$exports"
echo "[test] test services:" >&2
printf '%s\n' "$exports" | sed 's/^/[test]   /' >&2

# Integration tests spawn the binaries from target/debug.
cargo build --workspace --bins

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets --no-fail-fast "$@" || status=$?
else
    echo "[test] cargo-nextest not found; falling back to cargo test" >&2
    cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
fi
exit "$status"
