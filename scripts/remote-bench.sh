#!/usr/bin/env bash
# The figures of remote targets (issue 18), measured over a real OpenSSH server on this
# machine: an unprivileged sshd on a free port of 127.0.0.1 with its own host key, config
# and authorized_keys in a temporary directory (nothing of the system's is touched), the
# system's ssh pointed at it through TOKBENCH_SSH. Two targets are two workdirs here.
#
#   scripts/remote-bench.sh [SUITE] [SYNC_RESULTS]
#
# Prints: the suite run locally, on one target, on two targets one after the other and on
# two at once (wall seconds, and the ratio parallel / sequential); the controller's cost
# per streamed cell (its own store time, from the run's summary line, and the whole
# remote-minus-local difference per cell); the time `targets sync` takes to bring home a
# target database of SYNC_RESULTS results (scripts/gen-db.sh), and a second sync with
# nothing new. Needs a built tokbench ($TOKBENCH, default target/release/tokbench), sshd
# (openssh-server) and sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${1:-bench-configs/smoke.toml}
SYNC_N=${2:-10000}
TB=$(realpath "${TOKBENCH:-target/release/tokbench}")
[[ -x $TB ]] || { echo "$0: no tokbench at $TB: cargo build --release first" >&2; exit 1; }
[[ -x /usr/sbin/sshd ]] || { echo "$0: needs sshd: apt-get install openssh-server" >&2; exit 1; }

T=$(mktemp -d)
SSHD_PID=
cleanup() { [[ -n $SSHD_PID ]] && kill "$SSHD_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

for k in host_key client_key; do ssh-keygen -q -t ed25519 -N '' -f "$T/$k"; done
cp "$T/client_key.pub" "$T/authorized_keys"
[[ $(id -u) == 0 ]] && mkdir -p /run/sshd
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/host_key
PidFile $T/sshd.pid
AuthorizedKeysFile $T/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 100
MaxSessions 100
EOF
echo "[127.0.0.1]:$PORT $(cat "$T/host_key.pub")" >"$T/known_hosts"
cat >"$T/ssh_config" <<EOF
Host bench
  HostName 127.0.0.1
  Port $PORT
  User $(id -un)
  IdentityFile $T/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $T/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
EOF
/usr/sbin/sshd -D -e -f "$T/sshd_config" 2>"$T/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
export TOKBENCH_SSH="ssh -F $T/ssh_config"

# The targets' tokbench is this build, sharing this machine's model cache (sshd gives a
# remote command a clean environment).
CACHE=${TOKBENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokbench}
printf '#!/bin/sh\nexport TOKBENCH_CACHE=%q\nexec %q "$@"\n' "$CACHE" "$TB" >"$T/tb"
chmod 755 "$T/tb"
{
    for n in a b c; do printf '[target.%s]\nssh = "bench"\ntokbench = "%s"\nworkdir = "%s"\n\n' "$n" "$T/tb" "$T/w$n"; done
} >"$T/targets.toml"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Warm the model cache and the page cache once, so every timed run below starts equal.
"$TB" run "$SUITE" --db "$T/warm.db" --plain >/dev/null 2>&1
"$TB" targets --targets "$T/targets.toml" >/dev/null 2>&1 || true

t0=$(now); "$TB" run "$SUITE" --db "$T/local.db" --plain >/dev/null 2>&1; t1=$(now)
LOCAL=$(secs "$t0" "$t1")
CELLS=$(sqlite3 "$T/local.db" "SELECT COUNT(DISTINCT cell_index) FROM result")

t0=$(now)
"$TB" run "$SUITE" --targets "$T/targets.toml" --target a --db "$T/one.db" --plain 2>"$T/one.log" >/dev/null
t1=$(now)
ONE=$(secs "$t0" "$t1")
STORE_MS=$(grep -o '[0-9.]* ms each to store' "$T/one.log" | head -1 | cut -d' ' -f1)

t0=$(now)
"$TB" run "$SUITE" --targets "$T/targets.toml" --target a --db "$T/seq.db" --plain >/dev/null 2>&1
"$TB" run "$SUITE" --targets "$T/targets.toml" --target b --db "$T/seq.db" --plain >/dev/null 2>&1
t1=$(now)
SEQ=$(secs "$t0" "$t1")

t0=$(now)
"$TB" run "$SUITE" --targets "$T/targets.toml" --target a --target b --db "$T/par.db" --plain 2>"$T/par.log" >/dev/null
t1=$(now)
PAR=$(secs "$t0" "$t1")
PAR_CELLS=$(sqlite3 "$T/par.db" "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, cell_index FROM result)")

mkdir -p "$T/wc"
TOKBENCH=$TB scripts/gen-db.sh "$SYNC_N" "$T/wc/tokbench.db" >/dev/null 2>&1
SYNC_RESULTS=$(sqlite3 "$T/wc/tokbench.db" "SELECT COUNT(*) FROM result")
SYNC_BYTES=$(stat -c %s "$T/wc/tokbench.db")
t0=$(now); "$TB" targets sync c --targets "$T/targets.toml" --db "$T/sync.db" >/dev/null 2>&1; t1=$(now)
SYNC=$(secs "$t0" "$t1")
GOT=$(sqlite3 "$T/sync.db" "SELECT COUNT(*) FROM result")
t0=$(now); "$TB" targets sync c --targets "$T/targets.toml" --db "$T/sync.db" >/dev/null 2>&1; t1=$(now)
RESYNC=$(secs "$t0" "$t1")
AGAIN=$(sqlite3 "$T/sync.db" "SELECT COUNT(*) FROM result")

python3 - "$LOCAL" "$ONE" "$SEQ" "$PAR" "$CELLS" "$PAR_CELLS" "${STORE_MS:-nan}" \
    "$SYNC_RESULTS" "$SYNC_BYTES" "$SYNC" "$GOT" "$RESYNC" "$AGAIN" "$SUITE" "$(nproc)" <<'PY'
import sys
(local, one, seq, par, cells, par_cells, store_ms, n, size, sync, got, resync, again,
 suite, cores) = sys.argv[1:]
local, one, seq, par, sync, resync = map(float, (local, one, seq, par, sync, resync))
cells = int(cells)
print(f"suite {suite}: {cells} cells; {cores} cores on this machine, both targets on it")
print(f"| measure | value |")
print(f"|---|---|")
print(f"| local run | {local:.2f} s |")
print(f"| one target over ssh | {one:.2f} s |")
print(f"| two targets, one after the other | {seq:.2f} s |")
print(f"| two targets at once | {par:.2f} s ({par_cells} cells stored) |")
print(f"| parallel / sequential | {par / seq:.2f} |")
print(f"| controller store time per streamed cell | {store_ms} ms |")
print(f"| (one target - local) per cell | {(one - local) * 1e3 / cells:.0f} ms |")
print(f"| targets sync, {n} results ({int(size) / 1e6:.1f} MB) | {sync:.2f} s ({got} results here) |")
print(f"| targets sync again, nothing new | {resync:.2f} s ({again} results here) |")
PY
