#!/usr/bin/env bash
# Throughput through the VIP (client → master director, nftables DSR →
# real servers) against the same client talking to one real server
# directly, in the same lab and the same run (issue #7's benchmark).
#
#   bash bench/throughput.sh         # as root; needs wrk (apt install wrk)
# shellcheck source=bench/wrk_lab.sh
. "$(dirname "$0")/wrk_lab.sh" throughput
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
echo "| run | direct to rs01 (req/s) | through the VIP (req/s) | ratio |"
echo "|---|---|---|---|"
for r in 1 2 3; do
    direct=$(run http://10.91.0.21/)
    vip=$(run http://10.91.0.200/)
    echo "| $r | $direct | $vip | $(ratio "$vip" "$direct") |"
done
