#!/usr/bin/env bash
# Flows kept per event (issue #20): N long-lived TCP connections opened
# before each event — a real server's return, a weight change, a drain, a
# director stopped or crashed — and how many still run on their server
# after it, for lbdeploy's agent on IPVS (mh, and rr) and keepalived on
# IPVS without and with its sync daemon (lvs_sync_daemon), two directors
# each, in one VM run. This machine's kernel has no IPVS, so everything
# runs in Debian's kernel under qemu (TCG), the IPVS test's VM
# (tests/vm/build.sh) with another /init (bench/vm/flows-init, which
# describes the rows). The nftables data plane's figures come from the
# namespace lab instead (tests/continuity.rs).
#
#   sudo flock /tmp/lbdeploy-labtest.lock bash bench/flows_vm.sh [N [COLUMNS]]
#     N        streams per row (default 40)
#     COLUMNS  comma-separated, of lbd-mh,lbd-rr,ka,ka-sync (the default),
#              lbd-mh-sync, lbd-rr-sync (lbdeploy with ipvs_sync)
#
# LBDEPLOY_BIN: the lbdeploy binary to put in the VM (default: the debug
# build, built here). FLOWS_CONSOLE: a file to keep the VM's whole
# console in. Prints the console between its "@@" markers, then the
# table.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
columns=${2:-lbd-mh,lbd-rr,ka,ka-sync}
[ "$(id -u)" -eq 0 ] || { echo "run as root (apt-get download)" >&2; exit 1; }
command -v keepalived >/dev/null || { echo "needs keepalived" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "needs qemu" >&2; exit 1; }
target=target/x86_64-unknown-linux-gnu
bin=${LBDEPLOY_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --bin lbdeploy
  bin=$target/debug/lbdeploy
fi
cache=$target/tmp/flows-vm
VM_INIT=bench/vm/flows-init VM_BINS="$(command -v keepalived)" \
  tests/vm/build.sh "$cache" "$bin"

# The VM's own watchdog powers it off after 400 s a column; this bound
# is past it, and the trap ends qemu however this script ends.
ncols=$(tr ',' '\n' <<<"$columns" | grep -c .)
bound=$((ncols * 400 + 180))
out=$(mktemp)
timeout --kill-after=10 "$bound" qemu-system-x86_64 -accel tcg -m 1536 \
  -nographic -no-reboot -kernel "$cache/vmlinuz" -initrd "$cache/initrd" \
  -append "console=ttyS0 panic=-1 quiet lbd.n=$n lbd.columns=$columns" \
  </dev/null >"$out" 2>&1 &
vm=$!
trap 'kill "$vm" 2>/dev/null || true; rm -f "$out"' EXIT
wait "$vm" || echo "qemu exited $? (124: past the ${bound} s bound)" >&2

[ -z "${FLOWS_CONSOLE:-}" ] || tr -d '\r' <"$out" >"$FLOWS_CONSOLE"
tr -d '\r' <"$out" | sed -n '/^@@ flows/,/^@@ end/p'
grep -q '^@@ end' <(tr -d '\r' <"$out") || echo "the VM did not finish" >&2

# The table: rows are events, columns the set-ups, each "kept/opened".
echo
tr -d '\r' <"$out" | awk -v cols="$columns" '
  BEGIN {
    nc = split(cols, c, ",")
    nr = split("return weight drain stop return+stop crash", r, " ")
    name["lbd-mh"] = "lbdeploy IPVS (mh)"; name["lbd-rr"] = "lbdeploy IPVS (rr)"
    name["lbd-mh-sync"] = "lbdeploy IPVS (mh) + sync"; name["lbd-rr-sync"] = "lbdeploy IPVS (rr) + sync"
    name["ka"] = "keepalived IPVS"; name["ka-sync"] = "keepalived IPVS + sync daemon"
    ev["return"] = "rs1 back (flows opened while it was down)"
    ev["weight"] = "rs1 weight 1 → 3"; ev["drain"] = "rs2 drained (weight 0)"
    ev["stop"] = "master stopped (SIGTERM)"
    ev["return+stop"] = "rs1 back, then master stopped"
    ev["crash"] = "master crashed (link down, kill -9)"
  }
  $1 == "result" { v[$3, $2] = $4 "/" $5 }
  END {
    line = "| event |"; sep = "|---|"
    for (j = 1; j <= nc; j++) { line = line " " name[c[j]] " |"; sep = sep "---|" }
    print line; print sep
    for (i = 1; i <= nr; i++) {
      line = "| " ev[r[i]] " |"
      for (j = 1; j <= nc; j++) line = line " " ((r[i], c[j]) in v ? v[r[i], c[j]] : "—") " |"
      print line
    }
  }'
