#!/usr/bin/env bash
# Throughput through the VIP (client → master director, nftables DSR →
# real servers) against the same client talking to one real server
# directly, in the same lab and the same run (issues #7 and #21).
#
#   bash bench/throughput.sh [tcp|ipv6|udp]   # as root
#
# tcp (the default): HTTP over IPv4, `wrk` (apt install wrk), two real
#   servers behind the VIP.
# ipv6: the same over IPv6: a VRRPv3 VIP fd91::200, the client and the
#   real servers with addresses of fd91::/64 on their links.
# udp: DNS over UDP, `dnsperf` (apt install dnsperf) with 20 client
#   sockets (20 flows); one real server behind the VIP, so that the
#   single-threaded DNS side of the lab's responder is the same on both
#   paths and the ratio is the data plane's, not a second server's.
MODE=${1:-tcp}
case $MODE in
    tcp | ipv6 | udp) ;;
    *) echo "usage: $0 [tcp|ipv6|udp]" >&2; exit 2 ;;
esac
# shellcheck source=bench/wrk_lab.sh
. "$(dirname "$0")/wrk_lab.sh" "throughput-$MODE"
if [ "$MODE" = udp ]; then
    command -v dnsperf >/dev/null || { echo "install dnsperf (apt-get install dnsperf)" >&2; exit 1; }
fi

case $MODE in
    tcp) VIP=10.91.0.200 VIP_CIDR=10.91.0.200/24 VERSION=2 PORT=80 PROTO=tcp ;;
    ipv6) VIP=fd91::200 VIP_CIDR=fd91::200/64 VERSION=3 PORT=80 PROTO=tcp ;;
    udp) VIP=10.91.0.200 VIP_CIDR=10.91.0.200/24 VERSION=2 PORT=53 PROTO=udp ;;
esac
BACKENDS="      - { host: rs01, port: $PORT }"
[ "$MODE" = udp ] || BACKENDS="$BACKENDS
      - { host: rs02, port: $PORT }"
cat > "$INV" <<YAML
cluster: throughput
dataplane: nftables
directors:
  - { name: dir01, address: 10.91.0.11/24, interface: eth0, priority: 120 }
  - { name: dir02, address: 10.91.0.12/24, interface: eth0, priority: 70 }
real_servers:
  - { name: rs01, address: 10.91.0.21/24, interface: eth0 }
  - { name: rs02, address: 10.91.0.22/24, interface: eth0 }
vrrp_instances:
  - { name: VI_1, virtual_router_id: 81, version: $VERSION, virtual_addresses: [{ address: '$VIP_CIDR' }] }
virtual_services:
  - vip: '$VIP'
    port: $PORT
    protocol: $PROTO
    scheduler: rr
    real_servers:
$BACKENDS
lab: { controller: 10.91.0.10/24, client: 10.91.0.100/24 }
YAML
lab up >/dev/null 2>&1

# Restart host $1's responder with more arguments: kill the one in this
# host only (the lab's hosts share one PID namespace), then start another
# (in a second command, which the first's pattern would match).
responder() {
    local host=$1
    shift
    lab exec "$host" -- sh -c "me=\$(readlink /proc/self/ns/net); \
        for p in \$(pgrep -f '[l]bdeploy lab responder'); do \
          [ \"\$(readlink /proc/\$p/ns/net)\" = \"\$me\" ] && kill -9 \$p; done; true"
    sleep 0.2
    lab exec "$host" -- sh -c "setsid lbdeploy lab responder --port 80 \
        --name $host $* </dev/null >/dev/null 2>&1 &"
}
case $MODE in
    ipv6)
        for h in client:100 rs01:21 rs02:22; do
            lab exec "${h%:*}" -- ip addr add "fd91::${h#*:}/64" dev eth0 nodad
        done
        for h in rs01 rs02; do responder "$h" --listen ::; done
        ;;
    udp)
        for h in rs01 rs02; do responder "$h" --dns-port 53; done
        printf 'lab.test TXT\n' > "$WORK/queries"
        ;;
esac
lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null

# One measurement against address $1: requests (or queries) per second.
measure() {
    case $MODE in
        tcp) run "http://$1/" ;;
        ipv6) run "http://[$1]/" ;;
        udp) lab exec client -- dnsperf -s "$1" -p 53 -d "$WORK/queries" -l 10 -c 20 -q 200 2>&1 |
                 awk '/Queries per second/ { print $4 }' ;;
    esac
}
# Until the VIP answers (the master elected, the checks passed).
for _ in $(seq 1 100); do
    case $MODE in
        udp) lab exec client -- dnsperf -s "$VIP" -d "$WORK/queries" -n 1 -t 1 2>&1 |
                 grep -q 'Queries completed: *1 ' && break ;;
        tcp) lab exec client -- curl -sf --max-time 1 "http://$VIP/" >/dev/null 2>&1 && break ;;
        ipv6) lab exec client -- curl -sf --max-time 1 "http://[$VIP]/" >/dev/null 2>&1 && break ;;
    esac
    sleep 0.2
done
DIRECT=10.91.0.21
[ "$MODE" = ipv6 ] && DIRECT=fd91::21
unit="req/s"
[ "$MODE" = udp ] && unit="queries/s"
echo "| run | direct to rs01 ($unit) | through the VIP ($unit) | ratio |"
echo "|---|---|---|---|"
for r in 1 2 3; do
    direct=$(measure "$DIRECT")
    vip=$(measure "$VIP")
    echo "| $r | $direct | $vip | $(ratio "$vip" "$direct") |"
done
