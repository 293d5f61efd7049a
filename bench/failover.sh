#!/usr/bin/env bash
# Failover time from the client's side, lbdeploy's director agent against
# Debian's keepalived with the same VRRP settings (issue #6, "Benchmark"):
# VRRP v2 with advert_int 1s and v3 with advert_int 100ms.
#
#   sudo bash bench/failover.sh            # REPS=5 by default; ~6 min
#   REPS=9 FAIL=daemon bash bench/failover.sh
#
# Per version, one lab on 10.90.V.0/24 (V = 2 or 3): dir01 (priority 120),
# dir02 (70), rs01, rs02, one instance VI_1 with VIP .200 (label eth0:1)
# and a virtual service VIP:80 rr over the two real servers, installed by
# `lbdeploy apply --yes` from the lab controller.
#
# Each run: the client (bench/failover-probe.py) sends an ICMP echo request
# and an HTTP GET to the VIP every 10 ms, each with a 200 ms deadline; one
# second in, the master's daemon gets SIGKILL (lbdeploy: the agent and its
# supervisor; keepalived: the VRRP child and the parent) and, with the
# default FAIL=host, the master's eth0 goes down in the same shell command:
# the master host dies. The gap is the longest time between the send times
# of two consecutive answered probes. Then the old master is restored
# (VIP removed, eth0 up, daemon started) and has to preempt again.
#
# FAIL=daemon kills the daemon only. The VIP and the data plane stay in
# the dead master's kernel then, so the VIP keeps answering through it
# and the gap says nothing about VRRP (see BENCHMARKS.md).
#
# This kernel has no IPVS, so keepalived cannot forward VIP:80; for both
# daemons the compared gap is ICMP (the VIP answers on the new master),
# and lbdeploy's HTTP gap (through its nftables DSR data plane) is extra.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=${REPS:-5}
FAIL=${FAIL:-host}
VERSIONS=${VERSIONS:-"2 3"}
[ "$(id -u)" -eq 0 ] || {
    echo "run as root: the lab is network namespaces" >&2
    exit 1
}
case $FAIL in host | daemon) ;; *)
    echo "FAIL=host or FAIL=daemon" >&2
    exit 1
    ;;
esac
command -v keepalived >/dev/null || {
    echo "keepalived is not installed (apt-get install keepalived)" >&2
    exit 1
}

log() { printf '[failover %s] %s\n' "$(date +%T)" "$*" >&2; }

cargo build --release --quiet
# Not under /run: every lab host has its own /run; /tmp is shared.
WORK=$(mktemp -d /tmp/lbdeploy-failover.XXXXXX)
BIN=$WORK/lbdeploy
cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
cp bench/failover-probe.py "$WORK/probe.py"
STATES=()
cleanup() {
    local s
    for s in "${STATES[@]}"; do
        if [ -d "$s" ]; then "$BIN" lab --state-dir "$s" down >/dev/null 2>&1 || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# PIDs of processes whose command line matches the pgrep pattern $1, in the
# network namespace of the host this runs in (the lab shares one PID
# namespace). For `sh -c`.
# shellcheck disable=SC2016 # expanded by the lab host's sh
HERE='here() { me=$(readlink /proc/self/ns/net); for p in $(pgrep -f "$1"); do [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && echo $p; done; true; }; '

RESULTS=()
for V in $VERSIONS; do
    NET=10.90.$V
    VIP=$NET.200
    if [ "$V" = 2 ]; then
        ADV=1s KA_ADV=1 ADV_MS=1000
    else
        ADV=100ms KA_ADV=0.1 ADV_MS=100
    fi
    # Master_Down_Interval of the backup (priority 70): 3 × interval + skew;
    # skew is (256 − 70)/256 s for v2, (256 − 70) × interval / 256 for v3.
    MDI=$(awk -v v="$V" -v a="$ADV_MS" 'BEGIN {
        skew = (v == 2) ? 186 * 1000 / 256 : 186 * a / 256
        printf "%.0f", 3 * a + skew }')
    INV=$WORK/inventory-v$V.yml
    STATE=$WORK/state-v$V
    STATES+=("$STATE")
    cat >"$INV" <<EOF
cluster: failover$V
directors:
  - { name: dir01, address: $NET.11/24, interface: eth0, priority: 120 }
  - { name: dir02, address: $NET.12/24, interface: eth0, priority: 70 }
real_servers:
  - { name: rs01, address: $NET.21/24, interface: eth0 }
  - { name: rs02, address: $NET.22/24, interface: eth0 }
vrrp_instances:
  - name: VI_1
    virtual_router_id: 51
    version: $V
    advert_int: $ADV
    virtual_addresses: [{ address: $VIP/24, label: "eth0:1" }]
virtual_services:
  - name: web
    vip: $VIP
    port: 80
    protocol: tcp
    scheduler: rr
    forwarding: dr
    real_servers:
      - { host: rs01, port: 80 }
      - { host: rs02, port: 80 }
lab: { controller: $NET.10/24, client: $NET.100/24 }
EOF
    lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
    hx() {
        local h=$1
        shift
        lab exec "$h" -- sh -c "$HERE$*"
    }
    holds() { hx "$1" "ip -o -4 addr show dev eth0" | grep -q " $VIP/"; }
    # Until dir01 alone holds the VIP and the client gets answers ($1: the
    # probe command), at most 30 s.
    settle() {
        local i
        for ((i = 0; i < 300; i++)); do
            if holds dir01 && ! holds dir02 && hx client "$1" >/dev/null 2>&1; then
                sleep 1 # let the client's ARP entry and adverts settle
                return 0
            fi
            sleep 0.1
        done
        log "v$V: dir01 did not become the sole master"
        hx client "$1; ip neigh" >&2 || true
        hx dir01 "nft list ruleset | head -40; ip -s link show eth0" >&2 || true
        hx dir01 "ip -o -4 addr; tail -5 /run/lbdeploy/agent.log /run/ka/log 2>/dev/null" >&2 || true
        hx dir02 "ip -o -4 addr; tail -5 /run/lbdeploy/agent.log /run/ka/log 2>/dev/null" >&2 || true
        return 1
    }
    # One run: probe for 1 s + MDI + 2.5 s, kill -9 the PIDs that the
    # shell expression $1 prints (in dir01) at 1 s; prints
    # "ICMP_GAP HTTP_GAP" in ms.
    one_run() {
        local pids=$1 out=$WORK/probe-$RANDOM.txt secs
        secs=$(awk -v m="$MDI" 'BEGIN { printf "%.2f", 3.5 + m / 1000 }')
        lab exec client -- /usr/bin/python3 "$WORK/probe.py" "$VIP" "$secs" "$out" &
        local probe=$!
        sleep 1
        local down=''
        [ "$FAIL" = host ] && down='; ip link set eth0 down'
        hx dir01 "kill -9 $pids $down"
        wait "$probe"
        for kind in icmp http; do
            awk -v k="$kind" '$1 == k && $3 == 1 {
                if (prev) { d = ($2 - prev) / 1e6; if (d > m) m = d }
                prev = $2 } END { printf "%.0f\n", m }' "$out"
        done | paste -sd' '
        rm -f "$out"
    }
    restore_link() {
        if [ "$FAIL" = host ]; then
            hx dir01 "ip addr del $VIP/24 dev eth0 2>/dev/null; ip link set eth0 up"
        fi
    }
    rss_of() { # host, pattern: "TOTAL (a + b ...)" in kB of the matching processes
        hx "$1" "for p in \$(here '$2'); do awk '/^VmRSS/ { print \$2 }' /proc/\$p/status; done" |
            awk '{ t += $1; l = l (l ? " + " : "") $1 } END { printf "%d kB (%s)", t, l }'
    }
    summarise() { # name, http(yes/no), "icmp http" lines...
        local name=$1 http=$2 rss=$3
        shift 3
        local icmp=() web=() l
        for l in "$@"; do
            icmp+=("${l%% *}")
            web+=("${l##* }")
        done
        local im ia iz hm
        im=$(printf '%s\n' "${icmp[@]}" | median)
        ia=$(printf '%s\n' "${icmp[@]}" | sort -n | head -1)
        iz=$(printf '%s\n' "${icmp[@]}" | sort -n | tail -1)
        hm='n/a (no IPVS)'
        if [ "$http" = yes ]; then
            hm="$(printf '%s\n' "${web[@]}" | median) ($(printf '%s\n' "${web[@]}" | sort -n | head -1)–$(printf '%s\n' "${web[@]}" | sort -n | tail -1))"
        fi
        echo "$name|v$V, advert $ADV|$MDI|$im|$ia|$iz|$hm|$rss|${icmp[*]}"
    }

    log "v$V: lab up on $NET.0/24"
    lab down >/dev/null 2>&1 || true
    lab up >/dev/null
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
    AGENT_START='lbdeploy agent start director --config /etc/lbdeploy/agent.yml >/dev/null 2>&1'
    CURL="curl -sf --max-time 0.5 http://$VIP/"
    settle "$CURL"

    # ----- lbdeploy -----
    LB=()
    for ((r = 1; r <= REPS; r++)); do
        res=$(one_run "\$(here '[l]bdeploy agent')")
        log "v$V lbdeploy run $r: icmp/http gap ms: $res"
        LB+=("$res")
        restore_link
        hx dir01 "$AGENT_START" >/dev/null
        settle "$CURL"
    done
    LB_RSS="$(rss_of dir01 '[l]bdeploy agent')"
    LB_ROW=$(summarise lbdeploy yes "$LB_RSS" "${LB[@]}")

    # ----- keepalived -----
    for h in dir01 dir02; do hx "$h" "lbdeploy agent stop" >/dev/null; done
    ka_start() { # host priority
        local conf
        conf="global_defs {
  router_id ka-$1
  vrrp_version $V
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $2
  advert_int $KA_ADV
  virtual_ipaddress {
    $VIP/24 dev eth0 label eth0:1
  }
}
virtual_server $VIP 80 {
  delay_loop 6
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server $NET.21 80 { weight 1 }
  real_server $NET.22 80 { weight 1 }
}
"
        # -P: the VRRP process only; the checker would need IPVS.
        hx "$1" "mkdir -p /run/ka && rm -f /run/ka/*.pid && cat > /run/ka/keepalived.conf <<'EOF'
${conf}EOF
setsid keepalived -n -l -D -P -f /run/ka/keepalived.conf -p /run/ka/ka.pid -r /run/ka/vrrp.pid </dev/null >>/run/ka/log 2>&1 &
for i in \$(seq 100); do [ -s /run/ka/vrrp.pid ] && exit 0; sleep 0.05; done; cat /run/ka/log; exit 1"
    }
    ka_start dir02 70
    ka_start dir01 120
    # No ping(8) in this image: five probes of 10 ms, one ICMP answer will do.
    PING="/usr/bin/python3 $WORK/probe.py $VIP 0.05 /dev/stdout | grep -q '^icmp .* 1\$'"
    settle "$PING"
    KA=()
    for ((r = 1; r <= REPS; r++)); do
        # The VRRP child first (else the parent restarts it), then the parent.
        # The VRRP child before its parent: killed first, the parent would
        # SIGTERM the child (PR_SET_PDEATHSIG), which then resigns with
        # priority 0 and hands over after Skew_Time, not a crash.
        res=$(one_run '$(cat /run/ka/vrrp.pid /run/ka/ka.pid)' | awk '{ print $1, "-" }')
        log "v$V keepalived run $r: icmp gap ms: ${res%% *}"
        KA+=("$res")
        restore_link
        hx dir01 "rm -f /run/ka/*.pid; setsid keepalived -n -l -D -P -f /run/ka/keepalived.conf -p /run/ka/ka.pid -r /run/ka/vrrp.pid </dev/null >>/run/ka/log 2>&1 &
for i in \$(seq 100); do [ -s /run/ka/vrrp.pid ] && exit 0; sleep 0.05; done; exit 1"
        settle "$PING"
    done
    KA_RSS="$(rss_of dir01 '[k]eepalived .*-f /run/ka/keepalived.conf')"
    KA_ROW=$(summarise keepalived no "$KA_RSS" "${KA[@]}")
    for h in dir01 dir02; do
        hx "$h" "kill \$(here '[k]eepalived .*-f /run/ka/keepalived.conf') 2>/dev/null; sleep 0.5; kill -9 \$(here '[k]eepalived .*-f /run/ka/keepalived.conf') 2>/dev/null; true"
    done
    lab down >/dev/null
    RESULTS+=("$LB_ROW" "$KA_ROW")
done

DATE=$(date +%F)
OUT=$ROOT/bench/failover-$DATE.md
{
    echo "# Failover, lbdeploy vs keepalived ($DATE)"
    echo
    echo "\`REPS=$REPS FAIL=$FAIL bash bench/failover.sh\` on $(uname -r), $(nproc) CPUs, keepalived $(keepalived --version 2>&1 | head -1 | awk '{ print $2 }'), lbdeploy $(git rev-parse --short HEAD)."
    echo "Gaps in ms: the longest time between two answered client probes (one every 10 ms, 200 ms deadline) across the master's failure; median, min, max of $REPS runs. Master_Down_Interval is the backup's (priority 70). RSS: the master's daemon processes after the runs (lbdeploy: supervisor + agent; keepalived: parent + VRRP child, -P)."
    echo
    echo "| daemon | VRRP | Master_Down_Interval (ms) | ICMP gap median | min | max | gap / MDI | median vs keepalived | HTTP gap median (min–max) | RSS | ICMP gaps of the runs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for ((i = 0; i < ${#RESULTS[@]}; i += 2)); do
        lb=${RESULTS[i]} ka=${RESULTS[i + 1]}
        lbm=$(cut -d'|' -f4 <<<"$lb")
        kam=$(cut -d'|' -f4 <<<"$ka")
        for row in "$lb" "$ka"; do
            IFS='|' read -r name ver mdi med mn mx http rss runs <<<"$row"
            pct=$(awk -v g="$med" -v m="$mdi" 'BEGIN { printf "%.2f", g / m }')
            if [ "$name" = lbdeploy ]; then
                vs=$(awk -v a="$lbm" -v b="$kam" 'BEGIN { printf "%.2f×", a / b }')
            else
                vs=1
            fi
            echo "| $name | $ver | $mdi | $med | $mn | $mx | $pct | $vs | $http | $rss | $runs |"
        done
    done
} | tee "$OUT"
