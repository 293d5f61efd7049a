# bench/wrk_lab.sh — what bench/throughput.sh and bench/bgp.sh share:
# wrk present, this tree's release build copied into a work directory,
# `lab` run on the inventory the script writes to $INV, `run URL` (wrk's
# requests per second from the lab's client) and `ratio A B`, and the lab
# and the directory removed on exit. Sourced, with a name for the work
# directory as $1.
# shellcheck shell=bash disable=SC2034 # sets variables for the sourcing scripts
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
WORK=$(mktemp -d "/tmp/lbdeploy-$1.XXXXXX")
BIN=$WORK/lbdeploy
cp target/x86_64-unknown-linux-gnu/release/lbdeploy "$BIN"
INV=$WORK/inventory.yml
STATE=$WORK/state
lab() { "$BIN" -i "$INV" lab --state-dir "$STATE" "$@"; }
trap 'lab down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
run() { lab exec client -- wrk -t2 -c20 -d10s "$1" 2>&1 | awk '/Requests\/sec/ { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
