#!/usr/bin/env bash
# What fetching costs on top of importing: the same N people imported from a local CSV
# file (`roster import`) and pulled as that file from an SFTP server on loopback (OpenSSH
# sshd, password login); imported from a local JSON file and fetched as JSON from a web
# service on loopback in pages of 5000 (`roster fetch`).
# Embedded (SQLite), a fresh database per run; prints one line per run and the medians.
#
#   scripts/bench-sources.sh [ROWS] [REPEAT]     (as root: it makes a system user)
#
# Needs target/release/roster (cargo build --release), sshd, python3.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rows=${1:-1000000}
repeat=${2:-3}
roster=$PWD/target/release/roster
[[ -x $roster ]] || { echo "build it first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /var/tmp/roster-bench-XXXXXX)
chmod 755 "$work"
user=rbench$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cleanup() {
    [[ -n ${sshd_pid:-} ]] && kill "$sshd_pid" 2>/dev/null || true
    [[ -n ${http_pid:-} ]] && kill "$http_pid" 2>/dev/null || true
    userdel "$user" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The people, as a CSV file and as JSON records (same people).
python3 - "$rows" "$work" <<'EOF'
import json, sys
rows, work = int(sys.argv[1]), sys.argv[2]
with open(f"{work}/people.csv", "w") as csv, open(f"{work}/people.jsonl", "w") as js:
    csv.write("Employee ID,Email,First Name,Last Name,Title,Department,Phone,Status,City,Manager Email\n")
    for k in range(rows):
        p = {"employee_id": f"E{k:07d}", "email": f"person{k}@example.com",
             "first_name": f"First{k}", "last_name": f"Last{k}", "job_title": "Engineer",
             "department": f"Dept {k % 50}", "phone": f"+1 555 {k % 10000:04d}",
             "status": "active", "city": "Paris", "manager_email": f"person{k // 10}@example.com"}
        csv.write(",".join(str(v) for v in p.values()) + "\n")
        js.write(json.dumps(p) + "\n")
with open(f"{work}/people.jsonl") as js, open(f"{work}/people.json", "w") as doc:
    doc.write('{"employees":[' + ",".join(line.rstrip("\n") for line in js) + "]}")
EOF

# A customer's SFTP server.
useradd -M -d "$work/home" -s /bin/sh "$user"
mkdir -p "$work/home/out" && cp "$work/people.csv" "$work/home/out/" && chown -R "$user:" "$work/home"
echo "$user:$password" | chpasswd
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
mkdir -p /run/sshd
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/hostkey
PidFile $work/sshd.pid
PasswordAuthentication yes
UsePAM yes
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" & sshd_pid=$!
# A customer's web service: GET /employees?offset=&limit= from the JSON records.
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$work/people.jsonl" "$hport" <<'EOF' & http_pid=$!
import http.server, sys, urllib.parse
records = open(sys.argv[1]).read().splitlines()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        o, l = int(q["offset"][0]), int(q["limit"][0])
        body = ('{"employees":[' + ",".join(records[o:o + l]) + "]}").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
EOF
for p in "$port" "$hport"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
ssh-keyscan -p "$port" 127.0.0.1 2>/dev/null >"$work/known_hosts"
cat >"$work/tenants.yaml" <<EOF
tenants:
  bench:
    sources:
      sftp:
        kind: sftp
        host: 127.0.0.1
        port: $port
        user: $user
        password_env: BENCH_SFTP_PASSWORD
        known_hosts: $work/known_hosts
        path: $work/home/out
        stable_after: 1s
      web:
        kind: http
        url: http://127.0.0.1:$hport/employees
        timeout: 120s
        page: {size: 5000, offset_param: offset, limit_param: limit}
EOF

# Seconds one command takes; it must have applied one run creating everyone.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" --json >"$work/out.json"
    end=$(date +%s.%N)
    python3 - "$work/out.json" "$rows" <<'PY' >&2
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = len(runs) == 1 and runs[0]["status"] == "applied" and runs[0]["created"] == int(sys.argv[2])
sys.exit(0 if ok else f"not one applied run creating everyone: {runs}")
PY
    python3 -c "print(f'{$end - $start:.2f}')"
}

declare -A all
for r in $(seq "$repeat"); do
    for what in import sftp import-json web; do
        db=$work/run.db data=$work/run-data
        rm -rf "$db" "$db"-* "$data"
        export ROSTER_DATABASE_URL="sqlite://$db" ROSTER_DATA_DIR=$data BENCH_SFTP_PASSWORD=$password
        "$roster" tenants apply -f "$work/tenants.yaml" >/dev/null
        case $what in
        import) s=$(timed "$roster" import --tenant bench "$work/people.csv") ;;
        import-json) s=$(timed "$roster" import --tenant bench "$work/people.json") ;;
        sftp) s=$(timed "$roster" fetch --tenant bench --source sftp) ;;
        web) s=$(timed "$roster" fetch --tenant bench --source web) ;;
        esac
        echo "run $r: $what $s s"
        all[$what]+="$s "
    done
done
for what in import sftp import-json web; do
    echo "median $what: $(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" ${all[$what]}) s ($rows rows)"
done
