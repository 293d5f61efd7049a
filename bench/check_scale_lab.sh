#!/usr/bin/env bash
# Health-check scale across a network (issue #8, "Benchmark": listeners
# in the lab): N listeners in a real server's network namespace, checked
# every second by examples/check_scale in a director's namespace, over a
# veth pair, full connects first, then half-open. Unlike the loopback run,
# the listeners are a real server's own addresses and ports.
#
# Without RPS the kernel runs the real server's receive path inline, in
# the checker's own system calls, and charges the checker for it. With
# `rps`, the real server's receive path is steered to CPU 1 (the
# director's stays on CPU 0, with the checker pinned there), so that the
# listener's half of each handshake is no longer charged to the checker —
# as on a real server of its own — at the price of an inter-processor
# interrupt per packet, which a virtual machine pays dearly for.
#
#   sudo bash bench/check_scale_lab.sh [N [SECS [rps]]]     # default 5000 20
#
# Namespaces lbd-cs-dir and lbd-cs-rs on 10.88.250.0/24 (bench/lib.sh's
# range; tests use 10.77.x); both are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
secs=${2:-20}
rps=${3:-}
[ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces)" >&2; exit 1; }
cargo build --quiet --release --example check_scale
bin=$PWD/target/x86_64-unknown-linux-gnu/release/examples/check_scale
dir=lbd-cs-dir rs=lbd-cs-rs rs_ip=10.88.250.2
listener=

cleanup() {
    if [ -n "$listener" ]; then
        kill "$listener" 2>/dev/null || true
        wait "$listener" 2>/dev/null || true
    fi
    ip netns del "$dir" 2>/dev/null || true
    ip netns del "$rs" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$dir"
ip netns add "$rs"
ip link add cs-dir netns "$dir" type veth peer name cs-rs netns "$rs"
ip -n "$dir" addr add 10.88.250.1/24 dev cs-dir
ip -n "$rs" addr add "$rs_ip/24" dev cs-rs
for ns in "$dir" "$rs"; do
    ip -n "$ns" link set lo up
done
ip -n "$dir" link set cs-dir up
ip -n "$rs" link set cs-rs up
pin=()
if [ "$rps" = rps ]; then
    # The real server's receive on CPU 1; the director's (the answers
    # coming back) steered back to CPU 0, where it stays the checker's.
    ip netns exec "$rs" sh -c 'echo 2 > /sys/class/net/cs-rs/queues/rx-0/rps_cpus'
    ip netns exec "$dir" sh -c 'echo 1 > /sys/class/net/cs-dir/queues/rx-0/rps_cpus'
    pin=(taskset -c 0)
fi

# Twice SECS (the checker's run and its floor's) and slack.
ip netns exec "$rs" "$bin" "$n" $((4 * secs + 30)) --listen-only --addr "$rs_ip" &
listener=$!
sleep 2
echo "@@ full connects${rps:+ (rps)}"
ip netns exec "$dir" "${pin[@]}" "$bin" "$n" "$secs" --addr "$rs_ip"
echo "@@ half-open${rps:+ (rps)}"
ip netns exec "$dir" "${pin[@]}" "$bin" "$n" "$secs" --addr "$rs_ip" --half-open --no-floor
