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
# a fixed address, whatever N.
#
# Columns: wall-clock medians timed inside the controller; per host =
# warm apply ÷ N; CPU (medians, ms, from bench/lib.sh's cpuacct cgroups
# when the cgroup-v1 hierarchy is writable, else n/a): `controller`
# counts everything the measured command forks in the controller, the
# ssh processes included, `hosts` the managed hosts' sshd and everything
# they run; RSS is the lbdeploy process's highest peak over all runs (GNU
# time's %M). A run that does not end as a benchmark run must (the first
# apply changes every host, the others change none) stops the benchmark
# with its output.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
bench_init
# rss-timeit OUT CMD...: CMD's output into OUT; prints "MS EXITCODE
# PEAK_RSS_KB".
cat >"$WORK/rss-timeit" <<'SH'
#!/bin/sh
out=$1; shift
rss=$(mktemp)
s=$(date +%s%N)
rc=0; /usr/bin/time -f %M -o "$rss" "$@" >"$out" 2>&1 || rc=$?
e=$(date +%s%N)
echo "$(((e - s) / 1000000)) $rc $(tail -n1 "$rss")"
rm -f "$rss"
SH
chmod +x "$WORK/rss-timeit"

# noop_inventory N: the lab's inventory on 10.89.0.0/16 into $INV.
noop_inventory() {
    local n=$1 i
    {
        echo "cluster: noop$n"
        echo "directors:"
        echo "  - { name: dir01, address: 10.89.0.11/16, interface: eth0, priority: 120 }"
        echo "  - { name: dir02, address: 10.89.0.12/16, interface: eth0, priority: 70 }"
        echo "real_servers:"
        for ((i = 1; i <= n - 2; i++)); do
            echo "  - { name: rs$i, address: 10.89.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))/16, interface: eth0 }"
        done
        echo "vrrp_instances:"
        echo "  - { name: VI_1, virtual_router_id: 71, virtual_addresses: [{ address: 10.89.0.200/16 }] }"
        echo "lab: { controller: 10.89.0.10/16, client: 10.89.0.100/16 }"
    } >"$INV"
}

# timed CHECK ARGS...: `env ARGS` in the controller, its output checked by
# CHECK; prints "WALL_MS RSS_KB CONTROLLER_CPU_MS HOSTS_CPU_MS".
timed() {
    local check=$1 c0 h0 ms rc rss out
    shift
    out=$(mktemp "$DIR/out/run.XXXXXX")
    c0=$(cg_usage controller) h0=$(cg_usage hosts)
    read -r ms rc rss < <(in_cg controller "$BIN" -i "$INV" lab --state-dir \
        "$STATE" exec controller -- "$WORK/rss-timeit" "$out" env "$@")
    if [ "$rc" != 0 ] || ! "$check" "$out"; then
        log "N=$N: $* did not do what a benchmark run must (exit $rc):"
        cat "$out" >&2
        die "N=$N: $* failed; see above"
    fi
    echo "$ms $rss $(cg_delta_ms "$c0" "$(cg_usage controller)") $(cg_delta_ms "$h0" "$(cg_usage hosts)")"
}
# col K: the median of column K of the runs on stdin.
col() {
    local v
    mapfile -t v < <(awk -v k="$1" '{ print $k }')
    median "${v[@]}"
}

echo "| N | plan warm (ms) | no-op apply warm (ms) | per host (ms) | no-op apply cold (ms) | warm CPU controller / hosts (ms) | cold CPU controller / hosts (ms) | lbdeploy RSS (MB) | lab up (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2 10 30)
for N in "${SIZES[@]}"; do
    DIR=$WORK/n$N INV=$DIR/inventory.yml STATE=$DIR/lab
    mkdir -p "$DIR/out"
    noop_inventory "$N"
    STATE_DIRS+=("$STATE")
    log "N=$N: lab up"
    t0=$(date +%s%N)
    lab up >"$DIR/out/lab-up.txt"
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
    log "N=$N: the first apply"
    timed check_apply_first lbdeploy -i "$INV" apply --yes >/dev/null
    # The agents the first apply started are the hosts' own load.
    cg_agents_out
    plan=() warm=() cold=()
    for ((r = 0; r < REPS; r++)); do plan+=("$(timed check_plan_noop lbdeploy -i "$INV" plan)"); done
    for ((r = 0; r < REPS; r++)); do warm+=("$(timed check_apply_noop lbdeploy -i "$INV" apply --yes)"); done
    for ((r = 0; r < REPS; r++)); do
        cold+=("$(timed check_apply_noop LBDEPLOY_SSH_PERSIST=0 lbdeploy -i "$INV" apply --yes)")
    done
    w=$(printf '%s\n' "${warm[@]}" | col 1)
    all=$(printf '%s\n' "${plan[@]}" "${warm[@]}" "${cold[@]}")
    printf '| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %.1f |\n' "$N" \
        "$(printf '%s\n' "${plan[@]}" | col 1)" "$w" "$((w / N))" \
        "$(printf '%s\n' "${cold[@]}" | col 1)" \
        "$(printf '%s\n' "${warm[@]}" | col 3)" "$(printf '%s\n' "${warm[@]}" | col 4)" \
        "$(printf '%s\n' "${cold[@]}" | col 3)" "$(printf '%s\n' "${cold[@]}" | col 4)" \
        "$(($(awk '$2 > m { m = $2 } END { print m }' <<<"$all") / 1024))" "$(awk -v ms="$up_ms" 'BEGIN { print ms / 1000 }')"
    lab_destroy
done
