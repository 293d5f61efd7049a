#!/usr/bin/env bash
# No-op plan and apply of an N-host lab, warm (SSH masters kept from the
# previous run, the default) and cold (LBDEPLOY_SSH_PERSIST=0: a handshake
# per host). lbdeploy only; bench/apply.sh compares with Ansible.
#
#   bash bench/noop.sh 2 10 30      # as root; ~1 min per size
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
WORK=$(mktemp -d /tmp/lbdeploy-noop.XXXXXX)
BIN=$WORK/lbdeploy
cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
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
echo "| N | plan warm (ms) | no-op apply warm (ms) | no-op apply cold (ms) |"
echo "|---|---|---|---|"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2 10 30)
for N in "${SIZES[@]}"; do
    INV=$WORK/inventory-$N.yml
    STATE=$WORK/state-$N
    {
        echo "cluster: noop$N"
        echo "directors:"
        echo "  - { name: dir01, address: 10.89.$N.11/24, interface: eth0, priority: 120 }"
        echo "  - { name: dir02, address: 10.89.$N.12/24, interface: eth0, priority: 70 }"
        echo "real_servers:"
        for ((i = 1; i <= N - 2; i++)); do
            echo "  - { name: rs$i, address: 10.89.$N.$((20 + i))/24, interface: eth0 }"
        done
        echo "vrrp_instances:"
        echo "  - { name: VI_1, virtual_router_id: 71, virtual_addresses: [{ address: 10.89.$N.200/24 }] }"
        echo "lab: { controller: 10.89.$N.10/24, client: 10.89.$N.100/24 }"
    } > "$INV"
    lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
    lab up >/dev/null 2>&1
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
    # Milliseconds of `lbdeploy ARGS` on the controller, timed inside it.
    timed() {
        # shellcheck disable=SC2016 # expanded by the controller's sh
        lab exec controller -- sh -c \
            's=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000))' \
            sh env "$@"
    }
    plan=$(for _ in 1 2 3 4 5; do timed lbdeploy -q -i "$INV" plan; done | median)
    warm=$(for _ in 1 2 3 4 5; do timed lbdeploy -q -i "$INV" apply --yes; done | median)
    cold=$(for _ in 1 2 3 4 5; do timed LBDEPLOY_SSH_PERSIST=0 lbdeploy -q -i "$INV" apply --yes; done | median)
    echo "| $N | $plan | $warm | $cold |"
    lab down >/dev/null 2>&1
done
