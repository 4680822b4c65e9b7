#!/usr/bin/env bash
# What a held run costs at scale: N people imported, then the same people with 40% moved
# to the next department (a shifted column, held by the `attribute_churn` brake); the
# held run's change list printed (`roster runs show RUN --changes --json`) and the run
# approved. One process (`roster import`) on PostgreSQL with its defaults: a database
# `roster_bench_hold` is dropped and created on $PGURL's server.
# Prints each step's wall time and peak RSS (GNU time).
#
#   scripts/bench-hold.sh [ROWS]
#   PGURL=postgres://postgres@127.0.0.1:5432 (default)
#
# Needs target/release/roster (cargo build --release), psql, /usr/bin/time.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rows=${1:-1000000}
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432}
roster=$PWD/target/release/roster
[[ -x $roster ]] || { echo "build it first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /var/tmp/roster-bench-hold-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Person i is the same in both files but for the department of 2 in 5 people.
awk -v rows="$rows" 'BEGIN {
    header = "Employee ID,Email,First Name,Last Name,Title,Department,Phone,Status,Office,Company"
    print header > "base.csv"; print header > "churn.csv"
    srand(7)
    for (i = 0; i < rows; i++) {
        d = int(rand() * 40)
        moved = (i % 5 < 2) ? (d + 1) % 40 : d
        row = sprintf("E%07d,person.%d@example.com,First%d,Last%d,Engineer,Dept %%s,+1 555 %07d,active,Office %d,Example Corp", i, i, i % 97, i % 89, i, i % 5)
        printf(row "\n", "" d) > "base.csv"
        printf(row "\n", "" moved) > "churn.csv"
    }
}'

psql -X -q "$pgurl/postgres" -c "DROP DATABASE IF EXISTS roster_bench_hold" \
    -c "CREATE DATABASE roster_bench_hold"
export ROSTER_DATABASE_URL="$pgurl/roster_bench_hold?sslmode=disable"
export ROSTER_DATA_DIR=$work/data
"$roster" migrate >/dev/null

step() {
    local name=$1
    shift
    /usr/bin/time -f "$name: %e s, peak RSS %M KiB" "$@"
}
step "first import" "$roster" import --tenant big --json base.csv >first.json
# Held: exit 1.
step "shifted file, held" "$roster" import --tenant big --json churn.csv >held.json || true
run=$(grep -o '"run_id":"[^"]*"' held.json | cut -d'"' -f4)
grep -q '"status":"held"' held.json || { echo "not held: $(head -c 500 held.json)" >&2; exit 1; }
step "runs show --changes --json" "$roster" runs show "$run" --changes --json >changes.json
echo "change list: $(wc -c <changes.json) bytes"
step "runs approve" "$roster" runs approve "$run" --json >approved.json
grep -q '"status":"applied"' approved.json || { echo "not applied: $(head -c 500 approved.json)" >&2; exit 1; }
psql -X -q "$pgurl/postgres" -c "DROP DATABASE roster_bench_hold"
