# bench/lib.sh — what bench/apply.sh, bench/noop.sh and bench/profile.sh
# share. Sourced. LBDEPLOY_BIN=FILE benchmarks that build instead of this
# tree's release build.
# shellcheck shell=bash disable=SC2034 # sets variables for the sourcing scripts
#
# Labs: lab N gets 10.88.N.0/24 (other developers' test labs use 10.77.x),
# 2 directors (.11, .12), N-2 real servers (.21 up), controller .10, client
# .100, and a state directory of its own under the work directory.
#
# CPU accounting: when the cgroup-v1 cpuacct hierarchy is writable, three
# cgroups of our own count CPU time that no other load on the machine can
# leak into: `controller` (every command run in the lab controller, with
# everything it forks, daemonised ssh masters included), `hosts` (the
# managed hosts' sshd listeners and everything they fork: handshakes,
# sessions, the commands run over SSH) and `agents` (the lbdeploy agents
# that the first apply starts, kept out of `hosts`). Without it the CPU
# columns say n/a.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 }
        END { if (NR % 2) print a[(NR + 1) / 2];
              else printf "%d\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# Milliseconds as seconds with two decimals; "n/a" stays.
secs() {
    case $1 in
    n/a | '') echo n/a ;;
    *) awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }' ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", a / b }'; }

check_sizes() {
    local n
    for n in "$@"; do
        # .21 + (N-2) - 1 must stay below the VIP (.200); N is the third octet.
        if ! [[ $n =~ ^[0-9]+$ && $n -ge 2 && $n -le 180 ]]; then
            die "host count '$n': want an integer from 2 to 180"
        fi
    done
}

# Build the release binary, make the work directory, install the clean-up.
STATE_DIRS=()
CG=''
bench_init() {
    [ "$(id -u)" -eq 0 ] || die "run as root: the labs are network namespaces"
    local built=${LBDEPLOY_BIN:-}
    if [ -z "$built" ]; then # LBDEPLOY_BIN: another build to compare
        log "building the release binary"
        (cd "$ROOT" && cargo build --release)
        built=$ROOT/target/x86_64-unknown-linux-gnu/release/lbdeploy
    fi
    [ -x "$built" ] || die "no lbdeploy binary at $built"
    # Not under /run: every lab host covers /run with its own tmpfs. /tmp is
    # shared with the lab hosts, so the controller sees inventories, venv.
    WORK=$(mktemp -d /tmp/lbdeploy-bench.XXXXXX)
    BIN=$WORK/lbdeploy
    cp "$built" "$BIN"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # timeit OUT CMD...: CMD's output into OUT; prints "MS EXITCODE".
    cat >"$WORK/timeit" <<'EOF'
#!/bin/bash
out=$1; shift
start=$(date +%s%N)
rc=0; "$@" >"$out" 2>&1 || rc=$?
end=$(date +%s%N)
echo "$(( (end - start) / 1000000 )) $rc"
EOF
    # close-masters DIR: end the ssh ControlPersist masters with sockets in DIR.
    cat >"$WORK/close-masters" <<'EOF'
#!/bin/bash
for s in "$1"/*; do
    [ -S "$s" ] && ssh -o ControlPath="$s" -O exit bench >/dev/null 2>&1
done
exit 0
EOF

    local base=/sys/fs/cgroup/cpuacct
    if [ -w "$base" ] && mkdir "$base/lbdeploy-bench-$$" 2>/dev/null; then
        CG=$base/lbdeploy-bench-$$
        mkdir "$CG/controller" "$CG/hosts" "$CG/agents"
    else
        log "no writable cpuacct cgroup: CPU times will be n/a"
    fi
}

bench_cleanup() {
    local rc=$? s g
    trap - EXIT INT TERM
    for s in "${STATE_DIRS[@]}"; do
        "$BIN" lab --state-dir "$s" down >&2 || {
            log "could not take the lab in $s down"
            rc=1
        }
    done
    if [ -n "$CG" ]; then
        for g in controller hosts agents; do
            rmdir "$CG/$g" 2>/dev/null || {
                log "cgroup $CG/$g still has processes: $(tr '\n' ' ' <"$CG/$g/cgroup.procs")"
                rc=1
            }
        done
        rmdir "$CG" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# Nanoseconds of CPU used so far in cgroup $1, or n/a.
cg_usage() {
    if [ -n "$CG" ]; then cat "$CG/$1/cpuacct.usage"; else echo n/a; fi
}
cg_delta_ms() {
    case $1$2 in *n/a*) echo n/a ;; *) echo $((($2 - $1) / 1000000)) ;; esac
}
# in_cg GROUP CMD...: exec CMD in cgroup GROUP.
in_cg() {
    local g=$1
    shift
    if [ -n "$CG" ]; then
        sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/$g" "$@"
    else
        "$@"
    fi
}
# Move every process of cgroup `hosts` that is not sshd into `agents`.
cg_agents_out() {
    [ -n "$CG" ] || return 0
    local p
    while read -r p; do
        [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == sshd* ]] && continue
        echo "$p" >"$CG/agents/cgroup.procs" 2>/dev/null || true
    done < <(cat "$CG/hosts/cgroup.procs")
}

# ------------------------------------------------------------------ labs --

# The current lab.
N=0 DIR='' INV='' STATE='' LABUP_MS=0
HOSTS=()
lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }

write_inventory() {
    local n=$1 net=10.88.$1 i
    {
        echo "# bench: $n hosts, 2 directors and $((n - 2)) real servers"
        echo "cluster: bench-$n"
        echo "directors:"
        echo "  - { name: dir01, address: $net.11/24, interface: eth0, priority: 120 }"
        echo "  - { name: dir02, address: $net.12/24, interface: eth0, priority: 70 }"
        if [ "$n" -gt 2 ]; then
            echo "real_servers:"
            for ((i = 1; i <= n - 2; i++)); do
                printf '  - { name: rs%02d, address: %s.%d/24, interface: eth0 }\n' \
                    "$i" "$net" $((20 + i))
            done
        fi
        echo "vrrp_instances:"
        echo "  - name: VI_1"
        echo "    virtual_router_id: 51"
        echo "    virtual_addresses: [{ address: $net.200/24 }]"
        # Always a virtual service and a notification section: they worked
        # around two template bugs, fixed since (BENCHMARKS.md, "Problems
        # found"), and keep the measured work the same as before. With N=2
        # the service has no real servers (a warning).
        echo "virtual_services:"
        echo "  - vip: $net.200"
        echo "    port: 80"
        echo "    scheduler: rr"
        if [ "$n" -gt 2 ]; then
            echo "    real_servers:"
            for ((i = 1; i <= n - 2; i++)); do
                printf '      - { host: rs%02d, port: 80 }\n' "$i"
            done
        else
            echo "    real_servers: []"
        fi
        echo "notification:"
        echo "  email:"
        echo "    to: [ops@example.org]"
        echo "    from: lbdeploy@example.org"
        echo "    smtp_server: 127.0.0.1"
        echo "lab:"
        echo "  controller: $net.10/24"
        echo "  client: $net.100/24"
    } >"$INV"
}

# lab_create N [NAME]: write the inventory, bring the lab up (timed into
# LABUP_MS), put the hosts' sshd listeners into the `hosts` cgroup.
lab_create() {
    N=$1
    DIR=$WORK/${2:-n$1}
    INV=$DIR/inventory.yml
    STATE=$DIR/lab
    mkdir -p "$DIR/out"
    write_inventory "$N"
    local i
    HOSTS=(dir01 dir02)
    for ((i = 1; i <= N - 2; i++)); do HOSTS+=("$(printf 'rs%02d' "$i")"); done
    "$BIN" -i "$INV" validate >/dev/null 2>"$DIR/out/validate.txt"
    STATE_DIRS+=("$STATE")
    log "N=$N: lab up ($((N + 2)) hosts)"
    local t0
    t0=$(date +%s%N)
    lab up >"$DIR/out/lab-up.txt"
    LABUP_MS=$((($(date +%s%N) - t0) / 1000000))
    if [ -n "$CG" ]; then
        local p status
        status=$(lab status --json)
        for p in $(/usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(str(p["pid"]) for h in d["hosts"]
      if h["role"] not in ("controller", "client")
      for p in h["processes"] if p["kind"] == "sshd"))' <<<"$status"); do
            echo "$p" >"$CG/hosts/cgroup.procs"
        done
    fi
}

lab_destroy() {
    log "N=$N: lab down"
    lab down >&2
    unset 'STATE_DIRS[-1]'
}

# run_ctl LABEL CHECK CMD...: run CMD inside the controller, timed; CHECK (a
# function taking the output file) must accept its output. Prints "WALL_MS
# CONTROLLER_CPU_MS HOSTS_CPU_MS". The output stays in $DIR/out.
run_ctl() {
    local label=$1 check=$2 ms rc out c0 c1 h0 h1
    shift 2
    out=$(mktemp "$DIR/out/$label.XXXXXX")
    c0=$(cg_usage controller)
    h0=$(cg_usage hosts)
    read -r ms rc < <(in_cg controller "$BIN" -i "$INV" lab --state-dir \
        "$STATE" exec controller -- bash "$WORK/timeit" "$out" "$@")
    c1=$(cg_usage controller)
    h1=$(cg_usage hosts)
    if [ "$rc" != 0 ] || ! "$check" "$out"; then
        log "$label (N=$N) did not do what a benchmark run must (exit $rc):"
        cat "$out" >&2
        die "$label failed; see above"
    fi
    echo "$ms $(cg_delta_ms "$c0" "$c1") $(cg_delta_ms "$h0" "$h1")"
}

# sample KEY LABEL CHECK CMD...: one run_ctl, its wall / controller CPU /
# hosts CPU (ms) appended to SW/SC/SH[KEY] and left in LAST_SAMPLE as
# "wall/controller/hosts".
declare -A SW SC SH
LAST_SAMPLE=
sample() {
    local key=$1 r w c h
    shift
    r=$(run_ctl "$@")
    read -r w c h <<<"$r"
    SW[$key]+=" $w"
    SC[$key]+=" $c"
    SH[$key]+=" $h"
    LAST_SAMPLE="$w/$c/$h"
}

check_plan_noop() {
    grep -q "^Plan: 0 hosts to change, $N unchanged, 0 unreachable\.$" "$1"
}
check_apply_noop() { grep -q "^Apply: $N ok\.$" "$1"; }
check_apply_first() { grep -q "^Apply: $N changed; generation 1 recorded\.$" "$1"; }
check_any() { true; }
# Every one of the N hosts in the PLAY RECAP, each changed=0 failed=0
# unreachable=0.
check_ansible_noop() {
    awk -v n="$N" '
        /^PLAY RECAP/ { recap = 1; next }
        recap && / : ok=/ {
            hosts++
            if ($0 !~ / changed=0 / || $0 !~ / unreachable=0 / ||
                $0 !~ / failed=0 /) bad++
        }
        END { exit !(hosts == n && bad == 0) }' "$1"
}

machine() {
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), $(ssh -V 2>&1 | cut -d, -f1)"
}
lbdeploy_rev() {
    local dirty=''
    git -C "$ROOT" diff --quiet HEAD -- src templates roles Cargo.toml Cargo.lock || dirty=+dirty
    echo "$(git -C "$ROOT" rev-parse --short HEAD)$dirty"
}
