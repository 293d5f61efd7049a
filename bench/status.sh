#!/usr/bin/env bash
# `lbdeploy status` of an N-host lab (2 directors, N-2 real servers, all
# agents running after one apply), warm: SSH masters kept from the
# previous run (the default). Median of 5 runs, timed inside the
# controller's namespace. Issue #19.
#
#   bash bench/status.sh 2 10 30      # as root; ~1 min per size
#   LBDEPLOY_BIN=path/to/lbdeploy bash bench/status.sh …   # a given build
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/lbdeploy-status.XXXXXX)
BIN=$WORK/lbdeploy
if [ -n "${LBDEPLOY_BIN:-}" ]; then
    cp "$LBDEPLOY_BIN" "$BIN"
else
    cargo build --release --quiet
    cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
fi
cleanup() {
    for state in "$WORK"/state-*; do
        if [ -d "$state" ]; then
            "$BIN" lab --state-dir "$state" down >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| N | status warm (ms) | min (ms) | max (ms) | exit |"
echo "|---|---|---|---|---|"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2 10 30)
for N in "${SIZES[@]}"; do
    INV=$WORK/inventory-$N.yml
    STATE=$WORK/state-$N
    {
        echo "cluster: status$N"
        echo "directors:"
        echo "  - { name: dir01, address: 10.88.$N.11/24, interface: eth0, priority: 120 }"
        echo "  - { name: dir02, address: 10.88.$N.12/24, interface: eth0, priority: 70 }"
        echo "real_servers:"
        for ((i = 1; i <= N - 2; i++)); do
            echo "  - { name: rs$i, address: 10.88.$N.$((20 + i))/24, interface: eth0 }"
        done
        echo "vrrp_instances:"
        echo "  - { name: VI_1, virtual_router_id: 72, virtual_addresses: [{ address: 10.88.$N.200/24 }] }"
        echo "lab: { controller: 10.88.$N.10/24, client: 10.88.$N.100/24 }"
    } > "$INV"
    lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
    lab up >/dev/null 2>&1
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
    # Milliseconds of `lbdeploy ARGS` on the controller, timed inside it,
    # and its exit code.
    timed() {
        # shellcheck disable=SC2016 # expanded by the controller's sh
        lab exec controller -- sh -c \
            's=$(date +%s%N); "$@" >/dev/null; c=$?; e=$(date +%s%N); echo "$(((e - s) / 1000000)) $c"' \
            sh "$@"
    }
    # The first run starts the SSH masters; then until the VRRP election
    # has settled (exit 0), at most 30 tries.
    for _ in $(seq 30); do
        [ "$(timed lbdeploy -i "$INV" status | cut -d' ' -f2)" = 0 ] && break
        sleep 1
    done
    runs=$(for _ in 1 2 3 4 5; do timed lbdeploy -i "$INV" status; done)
    ms=$(echo "$runs" | cut -d' ' -f1)
    codes=$(echo "$runs" | cut -d' ' -f2 | sort -u | tr '\n' ' ')
    echo "| $N | $(echo "$ms" | median) | $(echo "$ms" | sort -n | head -1) | $(echo "$ms" | sort -n | tail -1) | $codes|"
    lab down >/dev/null 2>&1
done
