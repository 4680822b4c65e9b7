#!/usr/bin/env bash
# Measures the import API's upload path on a release build: the time from the first byte
# of a CSV upload of 1M people (or as many as asked) to its 202 (streamed to disk, hashed, stored durably, run
# created and announced), the uploading fetcher's peak memory, and a token's first
# (Argon2id) and later (remembered) checks. The fetcher runs alone as `roster-fetcher`
# on RabbitMQ and PostgreSQL (its defaults: fsync on), so its memory is the upload's.
#
#   ROSTER_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
#   ROSTER_DATABASE_URL='postgres://postgres@127.0.0.1:5432/bench_api?sslmode=disable' \
#   scripts/bench-api.sh [repeats] [people]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repeats="${1:-3}"
people="${2:-1000000}"
bin=target/release
work="$(mktemp -d)"
trap 'kill "$fetcher" 2>/dev/null || true; rm -rf "$work"' EXIT
db="${ROSTER_DATABASE_URL##*/}"; db="${db%%\?*}"
psql "${ROSTER_DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export ROSTER_DATA_DIR="$work/data" ROSTER_QUEUE_PREFIX="benchapi$$."
"$bin/roster" migrate >/dev/null
token="$("$bin/roster" tokens create --tenant bench)"
addr=127.0.0.1:18443
ROSTER_API_ADDR=$addr ROSTER_API_RATE_PER_MINUTE=100000 "$bin/roster-fetcher" >"$work/fetcher.log" 2>&1 &
fetcher=$!
until curl -s "http://$addr/v1/openapi.json" >/dev/null; do sleep 0.2; done
python3 - "$work" "$repeats" "$people" <<'PY'
import sys
work, n, people = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for r in range(n):
    with open(f"{work}/people-{r}.csv", "w") as f:
        f.write("Primary Email,Name,Job Title,Organization\n")
        for i in range(people):
            f.write(f"person{i:07d}@example.com,Person {i} Round{r},Engineer {i % 50},Org {i % 20}\n")
PY
echo "file: $(stat -c %s "$work/people-0.csv") bytes, $people people"
for r in $(seq 0 $((repeats - 1))); do
    curl -s -o /dev/null -w "upload $r: %{http_code} in %{time_total} s (%{speed_upload} B/s)\n" \
        -H "Authorization: Bearer $token" -F "file=@$work/people-$r.csv" "http://$addr/v1/imports"
done
grep -E 'VmHWM|VmRSS' "/proc/$fetcher/status" | sed 's/^/fetcher /'
id="$(curl -s -H "Authorization: Bearer $token" -F "file=@$work/people-0.csv" -F dry_run=true "http://$addr/v1/imports" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')"
fresh="$("$bin/roster" tokens create --tenant bench2)"
curl -s -o /dev/null -w "first check of a token (Argon2id): %{time_total} s\n" -H "Authorization: Bearer $fresh" "http://$addr/v1/imports/$id"
for i in 1 2 3; do
    curl -s -o /dev/null -w "later check: %{time_total} s\n" -H "Authorization: Bearer $fresh" "http://$addr/v1/imports/$id"
done
