#!/usr/bin/env bash
# Active-active directors over BGP (issue #20 part 2), in the lab with its
# router (BIRD, ECMP): throughput through the VIP with 3, 2 and 1
# directors announcing it against the client talking to one real server
# directly, in the same run; how 1,000 connections from distinct source
# ports spread over the three directors (packets each director's data
# plane forwarded); and how long the directors disagree on a real server:
# rs02 is stopped and started 10 times, and for each change the time
# between the first and the last director's log line saying so.
#
#   bash bench/bgp.sh         # as root; needs wrk (apt-get install wrk)
# shellcheck source=bench/wrk_lab.sh
. "$(dirname "$0")/wrk_lab.sh" bgp
cat > "$INV" <<YAML
cluster: bgp-bench
dataplane: nftables
directors:
  - { name: d1, address: 10.92.0.11/24, interface: eth0, priority: 100 }
  - { name: d2, address: 10.92.0.12/24, interface: eth0, priority: 100 }
  - { name: d3, address: 10.92.0.13/24, interface: eth0, priority: 100 }
real_servers:
  - { name: rs01, address: 10.92.0.21/24, interface: eth0 }
  - { name: rs02, address: 10.92.0.22/24, interface: eth0 }
bgp:
  local_as: 65001
  peers: [{ address: 10.92.0.1, as: 65000 }]
  bfd: { interval: 100ms, multiplier: 3 }
  hold_time: 3s
virtual_services:
  - vip: 10.93.0.100
    port: 80
    scheduler: rr
    announce: bgp
    delay_loop: 1s
    real_servers:
      - { host: rs01, port: 80, checks: [{ tcp: { connect_timeout: 1s, retry: 0 } }] }
      - { host: rs02, port: 80, checks: [{ tcp: { connect_timeout: 1s, retry: 0 } }] }
lab:
  controller: 10.92.0.10/24
  client: 10.94.0.100/24
  router: { address: 10.92.0.1/24, client_side: 10.94.0.1/24, as: 65000 }
YAML
lab up >/dev/null 2>&1
lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
# The router's next hops for the VIP (one `via` each, multipath or not).
hops() { lab exec router -- ip -4 route show 10.93.0.100 | grep -o 'via ' | wc -l; }
for _ in $(seq 1 150); do [ "$(hops)" = 3 ] && break; sleep 0.2; done
[ "$(hops)" = 3 ] || { echo "the router has no route over 3 directors" >&2; exit 1; }

packets() {
    for d in d1 d2 d3; do
        lab exec "$d" -- lbdeploy agent status --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["details"]["forwarding"].get("traffic", {})
print(sum(v.get("packets", 0) for s in t.values() for v in s.values()))'
    done
}
before=($(packets))
lab exec client -- sh -c 'for p in $(seq 41000 41999); do
    curl -s -o /dev/null --max-time 2 --local-port $p http://10.93.0.100/; done'
sleep 6   # the data plane's counters are read at each recheck (5 s)
after=($(packets))
echo "1,000 connections from distinct source ports, packets forwarded per director:"
total=0
for i in 0 1 2; do total=$((total + after[i] - before[i])); done
for i in 0 1 2; do
    n=$((after[i] - before[i]))
    echo "  d$((i + 1)): $n ($(awk -v n="$n" -v t="$total" 'BEGIN { printf "%.1f", 100 * n / t }') %)"
done

# Health agreement: stop and start rs02's web server ten times, 4 s
# apart (each change seen by every director within delay_loop +
# connect_timeout), then read each director's verdicts from its log.
responder="lbdeploy lab responder"
for _ in $(seq 1 10); do
    lab exec rs02 -- sh -c "me=\$(readlink /proc/self/ns/net); for p in \$(pgrep -f '[l]bdeploy lab responder'); do [ \"\$(readlink /proc/\$p/ns/net)\" = \"\$me\" ] && kill -9 \$p; done; true"
    sleep 4
    lab exec rs02 -- sh -c "setsid $responder --port 80 --name rs02 </dev/null >/dev/null 2>&1 &"
    sleep 4
done
for d in d1 d2 d3; do
    lab exec "$d" -- grep -h 'real server 10.92.0.22 ' /run/lbdeploy/agent.log \
        | sed -n 's/^ts=\([^ ]*\) .* is \(up\|down\):.*/\1 \2/p' | sed "s/\$/ $d/"
done | python3 -c '
import sys, datetime
events = {}
for line in sys.stdin:
    ts, verdict, director = line.split()
    t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    events.setdefault(director, []).append((t, verdict))
n = min(len(v) for v in events.values())
spreads = sorted(max(v[i][0] for v in events.values()) - min(v[i][0] for v in events.values())
                 for i in range(n))
print(f"directors disagreeing on rs02: {n} changes, for {1000 * spreads[0]:.0f}-{1000 * spreads[-1]:.0f} ms "
      f"(median {1000 * spreads[len(spreads) // 2]:.0f} ms)")'

echo
echo "| directors announcing | direct to rs01 (req/s) | through the VIP (req/s) | ratio |"
echo "|---|---|---|---|"
for n in 3 2 1; do
    direct=$(run http://10.92.0.21/)
    vip=$(run http://10.93.0.100/)
    echo "| $n | $direct | $vip | $(ratio "$vip" "$direct") |"
    [ "$n" = 1 ] && break
    lab exec "d$n" -- lbdeploy agent stop >/dev/null
    for _ in $(seq 1 50); do [ "$(hops)" = "$((n - 1))" ] && break; sleep 0.1; done
done
