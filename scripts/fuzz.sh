#!/usr/bin/env bash
# Fuzz the parser's input paths with libFuzzer (cargo-fuzz, nightly Rust):
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: csv json decode) for SECONDS (default 1800), two at a time
# on this 2-core machine, keeping each corpus in fuzz/corpus/<target> and any crash in
# fuzz/artifacts/<target>. Seeds the corpora from samples/ and tests/fixtures/ first.
# Installs cargo-fuzz if missing. Exits non-zero if any target found a crash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-1800}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(csv json decode)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
done
cp samples/*/*.csv tests/fixtures/*.tsv fuzz/corpus/csv/ 2>/dev/null || true
cp samples/*/*.json tests/fixtures/*.json fuzz/corpus/json/ 2>/dev/null || true
cp samples/*/*.csv fuzz/corpus/decode/ 2>/dev/null || true

cargo +nightly fuzz build -O >&2

status=0
run() {
    local t=$1
    echo "[fuzz] $t for ${seconds}s" >&2
    cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 \
        >"fuzz/$t.log" 2>&1 || { echo "[fuzz] $t FOUND A CRASH: see fuzz/$t.log and fuzz/artifacts/$t" >&2; return 1; }
    grep -E '^(#[0-9]+\s+DONE|Done)' "fuzz/$t.log" | tail -n1 >&2 || true
    echo "[fuzz] $t: no crash in ${seconds}s" >&2
}
# Two at a time.
pids=()
for t in "${targets[@]}"; do
    run "$t" &
    pids+=($!)
    if [[ ${#pids[@]} -ge 2 ]]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit "$status"
