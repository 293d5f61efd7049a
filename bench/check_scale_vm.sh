#!/usr/bin/env bash
# Health-check scale, lbdeploy against keepalived (issue #8, "Benchmark"):
# N TCP checks every second against N loopback listeners, first by
# lbdeploy's check runner (examples/check_scale), then by keepalived's
# checker, in the same VM run. keepalived's checker will not run without
# IPVS, which this machine's kernel lacks, so both run in Debian's kernel
# under qemu (TCG), the IPVS test's VM (tests/vm/build.sh) with another
# /init (bench/vm/check-scale-init). Emulation makes every number slower
# than on hardware: compare the two, not either with the host's.
#
# Then HTTPS_N HTTPS checks (keepalived's SSL_GET: TLS without
# verification) by each against TLS servers of another process.
#
#   sudo bash bench/check_scale_vm.sh [N [SECS [HTTPS_N]]]   # default 500 10 200
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
secs=${2:-10}
https_n=${3:-200}
[ "$(id -u)" -eq 0 ] || { echo "run as root (apt-get download)" >&2; exit 1; }
command -v keepalived >/dev/null || { echo "needs keepalived" >&2; exit 1; }
cargo build --quiet
cargo build --quiet --release --example check_scale
target=target/x86_64-unknown-linux-gnu
cache=$target/tmp/check-scale-vm
VM_INIT=bench/vm/check-scale-init \
VM_BINS="$(command -v keepalived)" \
VM_FILES="$target/release/examples/check_scale" \
  tests/vm/build.sh "$cache" "$target/debug/lbdeploy"
timeout 600 qemu-system-x86_64 -accel tcg -m 1024 -nographic -no-reboot \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd" \
  -append "console=ttyS0 panic=-1 quiet lbd.n=$n lbd.secs=$secs lbd.https_n=$https_n" </dev/null | tr -d '\r' \
  | sed -n '/^@@ lbdeploy/,/^@@ end/p'
