#!/usr/bin/env bash
# No-op plan and apply of an N-host lab, warm (SSH masters kept from the
# previous run, the default) and cold (LBDEPLOY_SSH_PERSIST=0: a handshake
# per host). lbdeploy only; bench/apply.sh compares with Ansible.
#
#   bash bench/noop.sh 30 100 300   # as root; ~1 min per 30 hosts
#   REPS=7 bash bench/noop.sh 100   # more runs per median (default 5)
#   LBDEPLOY_BIN=/tmp/old bash bench/noop.sh 100   # that build, not this tree
#
# Address plan, one lab at a time on 10.89.0.0/16: controller .0.10,
# directors .0.11 and .0.12, client .0.100, VIP .0.200; real server i at
# 10.89.(1 + (i-1)/250).(1 + (i-1)%250), so no real server ever lands on
# a fixed address, whatever N (the old plan put real server 80 on the
# client's .100).
#
# Columns: wall-clock medians timed inside the controller; per host =
# warm apply ÷ N; CPU (medians, ms, from cpuacct cgroups of this script's
# own when the cgroup-v1 hierarchy is writable, else n/a): `ctl` counts
# everything the measured command forks in the controller, the ssh
# processes included, `hosts` the managed hosts' sshd and everything they
# run; RSS is the lbdeploy process's highest peak over all runs (GNU
# time's %M).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
built=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/lbdeploy
if [ -n "${LBDEPLOY_BIN:-}" ]; then
    built=$LBDEPLOY_BIN # another build to compare, e.g. main's
else
    cargo build --release --quiet
fi
WORK=$(mktemp -d /tmp/lbdeploy-noop.XXXXXX)
BIN=$WORK/lbdeploy
cp "$built" "$BIN"
CG=''
base=/sys/fs/cgroup/cpuacct
if [ -w "$base" ] && mkdir "$base/lbdeploy-noop-$$" 2>/dev/null; then
    CG=$base/lbdeploy-noop-$$
    mkdir "$CG/ctl" "$CG/hosts" "$CG/agents"
fi
cleanup() {
    for state in "$WORK"/state-*; do
        if [ -d "$state" ]; then
            "$BIN" lab --state-dir "$state" down >/dev/null 2>&1 || true
        fi
    done
    if [ -n "$CG" ]; then
        rmdir "$CG/ctl" "$CG/hosts" "$CG/agents" "$CG" 2>/dev/null ||
            echo "cgroup $CG left: busy" >&2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
usage() { if [ -n "$CG" ]; then cat "$CG/$1/cpuacct.usage"; else echo 0; fi; }
# in_cg GROUP CMD...: CMD (and all it forks) in cgroup GROUP.
in_cg() {
    local g=$1
    shift
    if [ -n "$CG" ]; then
        sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/$g" "$@"
    else
        "$@"
    fi
}
# Runs in the controller: "$@" with its output checked by the caller's
# exit status; prints "WALL_MS PEAK_RSS_KB".
cat >"$WORK/timeit" <<'EOF'
#!/bin/sh
rss=$(mktemp)
s=$(date +%s%N)
/usr/bin/time -f %M -o "$rss" "$@" >/dev/null || { rm -f "$rss"; exit 1; }
e=$(date +%s%N)
echo "$(((e - s) / 1000000)) $(tail -n1 "$rss")"
rm -f "$rss"
EOF
chmod +x "$WORK/timeit"
echo "| N | plan warm (ms) | no-op apply warm (ms) | per host (ms) | no-op apply cold (ms) | warm CPU ctl / hosts (ms) | cold CPU ctl / hosts (ms) | lbdeploy RSS (MB) | lab up (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2 10 30)
for N in "${SIZES[@]}"; do
    INV=$WORK/inventory-$N.yml
    STATE=$WORK/state-$N
    {
        echo "cluster: noop$N"
        echo "directors:"
        echo "  - { name: dir01, address: 10.89.0.11/16, interface: eth0, priority: 120 }"
        echo "  - { name: dir02, address: 10.89.0.12/16, interface: eth0, priority: 70 }"
        echo "real_servers:"
        for ((i = 1; i <= N - 2; i++)); do
            echo "  - { name: rs$i, address: 10.89.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))/16, interface: eth0 }"
        done
        echo "vrrp_instances:"
        echo "  - { name: VI_1, virtual_router_id: 71, virtual_addresses: [{ address: 10.89.0.200/16 }] }"
        echo "lab: { controller: 10.89.0.10/16, client: 10.89.0.100/16 }"
    } >"$INV"
    lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
    t0=$(date +%s%N)
    lab up >/dev/null 2>&1
    up_ms=$((($(date +%s%N) - t0) / 1000000))
    if [ -n "$CG" ]; then
        for p in $(lab status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(str(p["pid"]) for h in d["hosts"]
      if h["role"] not in ("controller", "client")
      for p in h["processes"] if p["kind"] == "sshd" and p["pid"]))'); do
            echo "$p" >"$CG/hosts/cgroup.procs"
        done
    fi
    in_cg ctl "$BIN" -i "$INV" lab --state-dir "$STATE" exec controller -- \
        lbdeploy -q -i "$INV" apply --yes >/dev/null
    # The agents the first apply started are the hosts' own load.
    if [ -n "$CG" ]; then
        while read -r p; do
            [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == sshd* ]] && continue
            echo "$p" >"$CG/agents/cgroup.procs" 2>/dev/null || true
        done <"$CG/hosts/cgroup.procs"
    fi
    # One run of `lbdeploy ARGS` in the controller: "WALL_MS RSS_KB
    # CTL_CPU_MS HOSTS_CPU_MS".
    timed() {
        local c0 h0 out
        c0=$(usage ctl) h0=$(usage hosts)
        out=$(in_cg ctl "$BIN" -i "$INV" lab --state-dir "$STATE" \
            exec controller -- "$WORK/timeit" env "$@")
        echo "$out $((($(usage ctl) - c0) / 1000000)) $((($(usage hosts) - h0) / 1000000))"
    }
    # col K: the median of column K of the runs on stdin.
    col() { awk -v k="$1" '{ print $k }' | median; }
    plan=() warm=() cold=()
    for ((r = 0; r < REPS; r++)); do plan+=("$(timed lbdeploy -q -i "$INV" plan)"); done
    for ((r = 0; r < REPS; r++)); do warm+=("$(timed lbdeploy -q -i "$INV" apply --yes)"); done
    for ((r = 0; r < REPS; r++)); do
        cold+=("$(timed LBDEPLOY_SSH_PERSIST=0 lbdeploy -q -i "$INV" apply --yes)")
    done
    w=$(printf '%s\n' "${warm[@]}" | col 1)
    all=$(printf '%s\n' "${plan[@]}" "${warm[@]}" "${cold[@]}")
    printf '| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %.1f |\n' "$N" \
        "$(printf '%s\n' "${plan[@]}" | col 1)" "$w" "$((w / N))" \
        "$(printf '%s\n' "${cold[@]}" | col 1)" \
        "$(printf '%s\n' "${warm[@]}" | col 3)" "$(printf '%s\n' "${warm[@]}" | col 4)" \
        "$(printf '%s\n' "${cold[@]}" | col 3)" "$(printf '%s\n' "${cold[@]}" | col 4)" \
        "$(($(awk '$2 > m { m = $2 } END { print m }' <<<"$all") / 1024))" "$(awk -v ms="$up_ms" 'BEGIN { print ms / 1000 }')"
    lab down >/dev/null 2>&1
done
