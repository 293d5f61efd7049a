#!/usr/bin/env bash
# Throughput through the VIP (client → master director, nftables DSR →
# real servers) against the same client talking to one real server
# directly, in the same lab and the same run (issue #7's benchmark).
#
#   bash bench/throughput.sh         # as root; needs wrk (apt install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
WORK=$(mktemp -d /tmp/lbdeploy-throughput.XXXXXX)
BIN=$WORK/lbdeploy
cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
INV=$WORK/inventory.yml
STATE=$WORK/state
lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
trap 'lab down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
cat > "$INV" <<YAML
cluster: throughput
directors:
  - { name: dir01, address: 10.91.0.11/24, interface: eth0, priority: 120 }
  - { name: dir02, address: 10.91.0.12/24, interface: eth0, priority: 70 }
real_servers:
  - { name: rs01, address: 10.91.0.21/24, interface: eth0 }
  - { name: rs02, address: 10.91.0.22/24, interface: eth0 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 81, virtual_addresses: [{ address: 10.91.0.200/24 }] }
virtual_services:
  - vip: 10.91.0.200
    port: 80
    scheduler: rr
    real_servers:
      - { host: rs01, port: 80 }
      - { host: rs02, port: 80 }
lab: { controller: 10.91.0.10/24, client: 10.91.0.100/24 }
YAML
lab up >/dev/null 2>&1
lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
for _ in $(seq 1 100); do
    lab exec client -- curl -sf --max-time 1 http://10.91.0.200/ >/dev/null 2>&1 && break
    sleep 0.2
done
run() { lab exec client -- wrk -t2 -c20 -d10s "$1" 2>&1 | awk '/Requests\/sec/ { print $2 }'; }
echo "| run | direct to rs01 (req/s) | through the VIP (req/s) | ratio |"
echo "|---|---|---|---|"
for r in 1 2 3; do
    direct=$(run http://10.91.0.21/)
    vip=$(run http://10.91.0.200/)
    echo "| $r | $direct | $vip | $(awk -v a="$vip" -v b="$direct" 'BEGIN { printf "%.2f", a / b }') |"
done
