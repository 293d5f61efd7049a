#!/usr/bin/env bash
# Fast VRRP timers under stress, lbdeploy's director agent against Debian's
# keepalived in the same run (issue #16, "Benchmark").
#
#   sudo bash bench/stress.sh                    # ~17 min: 10 min soak
#   DURATION=60 REPS=3 bash bench/stress.sh      # a quick look
#   ADV_MS=100 bash bench/stress.sh              # another advert interval
#   RT_PRIO=50 bash bench/stress.sh              # both daemons' VRRP under
#                                                # SCHED_RR (vrrp_rt_priority)
#
# Two labs side by side, one per daemon, so that both meet the same
# machine at the same time (whatever else runs on it): lbdeploy on
# 10.91.1.0/24, keepalived on 10.91.2.0/24. Each: dir01 (priority 120),
# dir02 (70), rs01, rs02, VRRPv3 with advert_int ADV_MS (default 10 ms, the
# smallest interval both daemons accept: VRRPv3 counts centiseconds). In
# each lab, at the same time:
#
# 1. Soak, DURATION seconds (default 600): every core busy twice over (one
#    busy loop per core in each director namespace) and a competing
#    network load (the client and rs01 blast UDP datagrams at both
#    directors and the VIP as fast as Python sends them). Counted: VRRP
#    transitions on either director (each is a false one: nothing failed),
#    and on dir02 the gaps between dir01's adverts (tcpdump).
# 2. Link loss, REPS runs under the same load: the client probes the VIP
#    every 10 ms (bench/failover-probe.py, ICMP) and at 1 s dir01's eth0
#    goes down with its daemon running. The gap is the longest time between
#    two answered probes. Then eth0 comes back and dir01 preempts.
# 3. Tracking cost, 60 s each without load: nothing tracked, 10 scripts
#    (`/bin/true` every second), 10 scripts and 10 tracked processes
#    (sshd) on dir01; the daemon's CPU time (its own and its reaped
#    children's, which is where the scripts' time goes) and RSS.
#    keepalived cannot track processes in a network namespace (its
#    process connector is refused there): its last row is a FAULTed
#    instance, reported with its log line.
#
# Every load runs under `timeout` in the lab's namespaces and stops by
# itself; the labs are torn down on exit. Results go to
# bench/stress-DATE-ADVms.md. The labs share the machine's cores, so "busy loop
# per core in each director" means 4 × nproc busy loops competing with the
# daemons; the soaks start together.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ADV_MS=${ADV_MS:-10}
DURATION=${DURATION:-600}
REPS=${REPS:-5}
[ "$(id -u)" -eq 0 ] || {
    echo "run as root: the lab is network namespaces" >&2
    exit 1
}
command -v keepalived >/dev/null || {
    echo "keepalived is not installed (apt-get install keepalived)" >&2
    exit 1
}
command -v tcpdump >/dev/null || {
    echo "tcpdump is not installed (apt-get install tcpdump)" >&2
    exit 1
}
log() { printf '[stress %s %s] %s\n' "$(date +%T)" "${KIND:-}" "$*" >&2; }

cargo build --release --quiet
# Not under /run: every lab host has its own /run; /tmp is shared.
WORK=$(mktemp -d /tmp/lbdeploy-stress.XXXXXX)
BIN=$WORK/lbdeploy
cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
cp bench/failover-probe.py "$WORK/probe.py"
cleanup() {
    local s
    for s in "$WORK"/state-*; do
        [ -d "$s" ] && "$BIN" lab --state-dir "$s" down >/dev/null 2>&1
    done
    jobs -p | xargs -r kill 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The UDP blaster: blast.py SECONDS TARGET... sends 1200-byte datagrams to
# port 9 of each target in turn until SECONDS have passed.
cat >"$WORK/blast.py" <<'EOF'
import socket, sys, time
end = time.monotonic() + float(sys.argv[1])
targets = [(t, 9) for t in sys.argv[2:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 1200
sent = 0
while time.monotonic() < end:
    for t in targets:
        try:
            s.sendto(payload, t)
            sent += 1
        except OSError:
            pass
print(sent)
EOF

ADV_S=$(awk -v a="$ADV_MS" 'BEGIN { printf "%.2f", a / 1000 }')
# Master_Down_Interval of the backup (priority 70): 3 × interval + skew,
# skew = (256 − 70) × interval / 256.
MDI=$(awk -v a="$ADV_MS" 'BEGIN { printf "%.0f", 3 * a + 186 * a / 256 }')

inventory() { # $1: extra instance options, $2: extra top-level keys
    cat <<EOF
cluster: stress-$KIND
directors:
  - { name: dir01, address: $NET.11/24, interface: eth0, priority: 120 }
  - { name: dir02, address: $NET.12/24, interface: eth0, priority: 70 }
real_servers:
  - { name: rs01, address: $NET.21/24, interface: eth0 }
  - { name: rs02, address: $NET.22/24, interface: eth0 }
vrrp_instances:
  - name: VI_1
    virtual_router_id: 51
    version: 3
    advert_int: ${ADV_MS}ms
    virtual_addresses: [{ address: $VIP/24 }]
$1
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
$2
EOF
}
lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
# shellcheck disable=SC2016 # expanded by the lab host's sh
HERE='here() { me=$(readlink /proc/self/ns/net); for p in $(pgrep -f "$1"); do [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && echo $p; done; true; }; '
hx() {
    local h=$1
    shift
    lab exec "$h" -- sh -c "$HERE$*"
}
holds() { hx "$1" "ip -o -4 addr show dev eth0" | grep -q " $VIP/"; }
# Until dir01 alone holds the VIP and answers the client, at most 60 s.
settle() {
    local i
    for ((i = 0; i < 600; i++)); do
        if holds dir01 && ! holds dir02 && hx client "$PING" >/dev/null 2>&1; then
            sleep 1
            return 0
        fi
        sleep 0.1
    done
    log "dir01 did not become the sole master"
    return 1
}

# Load for $1 seconds: 2 × nproc busy loops (nproc in each director) and
# the UDP blasters. Runs in the background; `wait` ends it.
LOAD_PIDS=()
load() {
    local secs=$1 h i
    for h in dir01 dir02; do
        for ((i = 0; i < $(nproc); i++)); do
            lab exec "$h" -- timeout "$secs" sh -c 'while :; do :; done' &
            LOAD_PIDS+=($!)
        done
    done
    lab exec client -- timeout "$((secs + 5))" python3 "$WORK/blast.py" "$secs" $NET.11 $NET.12 $VIP >/dev/null &
    LOAD_PIDS+=($!)
    lab exec rs01 -- timeout "$((secs + 5))" python3 "$WORK/blast.py" "$secs" $NET.11 $NET.12 >/dev/null &
    LOAD_PIDS+=($!)
}
end_load() {
    wait "${LOAD_PIDS[@]}" 2>/dev/null || true
    LOAD_PIDS=()
}

# Transitions so far on both directors, from the daemon's own log ($1:
# the pattern of a transition line, $2: the log file).
transitions() {
    local n=0 h c
    for h in dir01 dir02; do
        c=$(hx "$h" "grep -cE '$1' $2 2>/dev/null || true")
        n=$((n + ${c:-0}))
    done
    echo "$n"
}

# The soak: prints "TRANSITIONS ADVERTS MAX_GAP_MS P999_GAP_MS".
soak() { # $1 pattern, $2 log
    local before after cap=$WORK/adverts-$KIND.txt
    before=$(transitions "$1" "$2")
    load "$DURATION"
    hx dir02 "timeout $DURATION tcpdump -l -n -tt -i eth0 'ip proto 112 and src $NET.11' 2>/dev/null" >"$cap" || true
    end_load
    after=$(transitions "$1" "$2")
    local n
    n=$(wc -l <"$cap")
    awk 'NR > 1 { printf "%.1f\n", ($1 - prev) * 1000 } { prev = $1 }' "$cap" | sort -n |
        awk -v t="$((after - before))" -v n="$n" '{ g[NR] = $1 }
            END { i = int(NR * 0.999); if (i < 1) i = 1
                  printf "%d %d %s %s\n", t, n, g[NR], g[i] }'
}

# Link loss under load, REPS runs: prints the ICMP gaps in ms.
link_loss() {
    local r out gaps=() secs
    secs=$(awk -v m="$MDI" 'BEGIN { printf "%.2f", 3.5 + m / 1000 }')
    for ((r = 1; r <= REPS; r++)); do
        out=$WORK/probe-$KIND-$r.txt
        load 8
        sleep 1
        lab exec client -- /usr/bin/python3 "$WORK/probe.py" "$VIP" "$secs" "$out" &
        local probe=$!
        sleep 1
        hx dir01 "ip link set eth0 down"
        wait "$probe"
        end_load
        gaps+=("$(awk '$1 == "icmp" && $3 == 1 {
            if (prev) { d = ($2 - prev) / 1e6; if (d > m) m = d }
            prev = $2 } END { printf "%.0f\n", m }' "$out")")
        log "  link loss run $r: gap ${gaps[-1]} ms"
        hx dir01 "ip link set eth0 up"
        settle
    done
    echo "${gaps[*]}"
}

# CPU (utime+stime+cutime+cstime, in ms) and RSS (kB) of the processes
# matching $1 on dir01 over $2 seconds: prints "CPU_MS RSS_KB".
cost() {
    local pat=$1 secs=$2
    # shellcheck disable=SC2016
    local sample='t=0; for p in $(here "'"$pat"'"); do set -- $(cut -d")" -f2 /proc/$p/stat); t=$((t + ${12} + ${13} + ${14} + ${15})); done; echo $t'
    local a b hz rss
    hz=$(getconf CLK_TCK)
    a=$(hx dir01 "$sample")
    sleep "$secs"
    b=$(hx dir01 "$sample")
    rss=$(hx dir01 "for p in \$(here '$pat'); do awk '/^VmRSS/ { print \$2 }' /proc/\$p/status; done" | awk '{ t += $1 } END { print t }')
    echo "$(((b - a) * 1000 / hz)) $rss"
}

median() { tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

# Lab $2 (third octet) for daemon $1, up and applied; sets the lab globals
# (each daemon runs in a subshell of its own).
setup_lab() {
    KIND=$1 NET=10.91.$2
    VIP=$NET.200 STATE=$WORK/state-$1 INV=$WORK/lab-$1/inventory.yml
    PING="/usr/bin/python3 $WORK/probe.py $VIP 0.05 /dev/stdout | grep -q '^icmp .* 1\$'"
    # Its own directory: the controller keeps its state (and apply lock)
    # beside the inventory.
    mkdir -p "$WORK/lab-$1"
    inventory "" "${RT_PRIO:+vrrp_rt_priority: $RT_PRIO}" >"$INV"
    log "lab up on $NET.0/24, VRRPv3 every ${ADV_MS} ms (Master_Down_Interval ${MDI} ms)"
    lab down >/dev/null 2>&1 || true
    lab up >/dev/null
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
}
# Both daemons start their soak together; the other one has 10 minutes.
barrier() {
    local i
    touch "$WORK/ready-$KIND"
    for ((i = 0; i < 3000; i++)); do
        [ -e "$WORK/ready-lbdeploy" ] && [ -e "$WORK/ready-keepalived" ] && return 0
        sleep 0.2
    done
    log "the other lab never got ready"
    exit 1
}
# "{ name: P0 }, { name: P1 }, ..." for the ten tracked objects P0–P9.
names() {
    local i
    for i in $(seq 0 9); do printf '{ name: %s%s }, ' "$1" "$i"; done | sed 's/, $//'
}

bench_lbdeploy() {
    setup_lab lbdeploy 1
    settle
    barrier
    log "soak ${DURATION}s under load"
    local soaked gaps idle only tracked i
    soaked=$(soak ' -> (MASTER|BACKUP|FAULT) \(priority' /run/lbdeploy/agent.log)
    log "soak: $soaked"
    settle
    log "link loss ×$REPS under load"
    gaps=$(link_loss)
    idle=$(cost '[l]bdeploy agent' 60)
    local scripts="vrrp_scripts:" procs="vrrp_track_processes:"
    for i in $(seq 0 9); do
        scripts+=$'\n'"  - { name: chk$i, command: [/bin/true], interval: 1s }"
        procs+=$'\n'"  - { name: proc$i, process: sshd }"
    done
    inventory "    track:
      scripts: [$(names chk)]" "$scripts" >"$INV"
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
    settle
    only=$(cost '[l]bdeploy agent' 60)
    inventory "    track:
      scripts: [$(names chk)]
      processes: [$(names proc)]" "$scripts
$procs" >"$INV"
    lab exec controller -- lbdeploy -q -i "$INV" apply --yes >/dev/null
    settle
    tracked=$(cost '[l]bdeploy agent' 60)
    log "cost idle $idle, 10 scripts $only, + 10 processes $tracked (CPU ms/60 s, RSS kB)"
    printf '%s\n' "$soaked" "$gaps" "$idle" "$only" "$tracked" "-" >"$WORK/result-lbdeploy"
}

ka_conf() { # priority, tracking: no, scripts, or procs (scripts and processes)
    local track='' scripts='' i
    if [ "$2" != no ]; then
        for i in $(seq 0 9); do
            scripts+="vrrp_script chk$i {
  script /bin/true
  interval 1
}
"
        done
        track="  track_script {
$(for i in $(seq 0 9); do echo "    chk$i"; done)
  }"
    fi
    if [ "$2" = procs ]; then
        for i in $(seq 0 9); do
            scripts+="vrrp_track_process proc$i {
  process sshd
}
"
        done
        track+="
  track_process {
$(for i in $(seq 0 9); do echo "    proc$i"; done)
  }"
    fi
    cat <<KA
global_defs {
  router_id ka-$1
  vrrp_version 3
  ${RT_PRIO:+vrrp_rt_priority $RT_PRIO}
  enable_script_security
  script_user root
}
$scripts
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $1
  advert_int $ADV_S
  virtual_ipaddress {
    $VIP/24 dev eth0
  }
$track
}
KA
}
KA_MATCH='[k]eepalived .*-f /run/ka/keepalived.conf'
ka_start() { # host priority tracking
    hx "$1" "mkdir -p /run/ka && rm -f /run/ka/*.pid && cat > /run/ka/keepalived.conf <<'KA'
$(ka_conf "$2" "$3")
KA
setsid keepalived -n -l -D -P -f /run/ka/keepalived.conf -p /run/ka/ka.pid -r /run/ka/vrrp.pid </dev/null >>/run/ka/log 2>&1 &
for i in \$(seq 100); do [ -s /run/ka/vrrp.pid ] && exit 0; sleep 0.05; done; cat /run/ka/log; exit 1"
}
ka_stop() {
    hx "$1" "kill \$(here '$KA_MATCH') 2>/dev/null; sleep 0.5; kill -9 \$(here '$KA_MATCH') 2>/dev/null; true"
}

bench_keepalived() {
    setup_lab keepalived 2
    local h soaked gaps idle only tracked notes
    for h in dir01 dir02; do hx "$h" "lbdeploy agent stop" >/dev/null; done
    ka_start dir02 70 no
    ka_start dir01 120 no
    settle
    barrier
    log "soak ${DURATION}s under load"
    soaked=$(soak 'Entering (MASTER|BACKUP|FAULT) STATE' /run/ka/log)
    log "soak: $soaked"
    settle
    log "link loss ×$REPS under load"
    gaps=$(link_loss)
    idle=$(cost "$KA_MATCH" 60)
    ka_stop dir01
    ka_start dir01 120 scripts
    settle
    only=$(cost "$KA_MATCH" 60)
    # keepalived tracks processes through the kernel's process connector,
    # which a network namespace other than the first refuses: the
    # instance goes to FAULT, so there is no like-for-like figure.
    ka_stop dir01
    ka_start dir01 120 procs
    sleep 3
    tracked=$(cost "$KA_MATCH" 60)
    notes=$(hx dir01 "grep -E 'process event|quorum not achieved' /run/ka/log | sed 's/^.*2026: //' | sort -u | head -2" | tr '\n' ' ')
    log "cost idle $idle, 10 scripts $only, + 10 processes $tracked"
    for h in dir01 dir02; do ka_stop "$h"; done
    printf '%s\n' "$soaked" "$gaps" "$idle" "$only" "$tracked" "${notes:--}" >"$WORK/result-keepalived"
}

bench_lbdeploy &
LB_JOB=$!
bench_keepalived &
KA_JOB=$!
wait "$LB_JOB" "$KA_JOB"
for k in lbdeploy keepalived; do
    [ -s "$WORK/result-$k" ] || {
        log "no result for $k"
        exit 1
    }
done
{
    read -r LB_SOAK
    read -r LB_GAPS
    read -r LB_IDLE
    read -r LB_SCRIPTS
    read -r LB_TRACK
} <"$WORK/result-lbdeploy"
{
    read -r KA_SOAK
    read -r KA_GAPS
    read -r KA_IDLE
    read -r KA_SCRIPTS
    read -r KA_TRACK
    read -r KA_TRACK_LOG
} <"$WORK/result-keepalived"

DATE=$(date +%F)
OUT=$ROOT/bench/stress-$DATE-${ADV_MS}ms${RT_PRIO:+-rt$RT_PRIO}.md
row() { # name soak gaps
    local name=$1 t n max p999 gaps=$3 med mx
    read -r t n max p999 <<<"$2"
    med=$(echo "$gaps" | median)
    mx=$(echo "$gaps" | tr ' ' '\n' | sort -n | tail -1)
    echo "| $name | $t | $n | $p999 | $max | $med | $mx | $gaps |"
}
cost_row() { # name idle scripts track
    local name=$1 ic ir sc sr tc tr
    read -r ic ir <<<"$2"
    read -r sc sr <<<"$3"
    read -r tc tr <<<"$4"
    echo "| $name | $ic | $ir | $sc (+$((sc - ic))) | $sr (+$((sr - ir))) | $tc (+$((tc - ic))) | $tr (+$((tr - ir))) |"
}
{
    echo "# Fast timers under stress, lbdeploy vs keepalived ($DATE)"
    echo
    echo "\`${RT_PRIO:+RT_PRIO=$RT_PRIO }DURATION=$DURATION REPS=$REPS ADV_MS=$ADV_MS bash bench/stress.sh\` on $(uname -r), $(nproc) CPUs, keepalived $(keepalived --version 2>&1 | head -1 | awk '{ print $2 }'), lbdeploy $(git rev-parse --short HEAD)."
    echo "VRRPv3, advert interval ${ADV_MS} ms, backup's Master_Down_Interval ${MDI} ms. Both labs at once, each with its own load: $((2 * $(nproc))) busy loops (one per core in each director) and two UDP blasters (client and rs01 → both directors and the VIP); $((4 * $(nproc))) busy loops on the machine."
    echo
    echo "| daemon | false transitions in ${DURATION} s | adverts seen by the backup | advert gap p99.9 (ms) | max (ms) | link-loss gap median (ms) | max | gaps of the runs |"
    echo "|---|---|---|---|---|---|---|---|"
    row lbdeploy "$LB_SOAK" "$LB_GAPS"
    row keepalived "$KA_SOAK" "$KA_GAPS"
    echo
    echo "Tracking cost on dir01, 60 s each without the lab's own load (the other lab may still be loaded): CPU ms (daemon processes and their reaped children, i.e. the scripts) and RSS kB; lbdeploy: supervisor + agent, keepalived: parent + VRRP child."
    echo
    echo "| daemon | idle CPU ms | idle RSS kB | 10 scripts: CPU ms | RSS kB | 10 scripts + 10 processes: CPU ms | RSS kB |"
    echo "|---|---|---|---|---|---|---|"
    cost_row lbdeploy "$LB_IDLE" "$LB_SCRIPTS" "$LB_TRACK"
    cost_row keepalived "$KA_IDLE" "$KA_SCRIPTS" "$KA_TRACK"
    echo
    echo "keepalived with the 10 processes, from its log: $KA_TRACK_LOG"
} | tee "$OUT"
