#!/usr/bin/env bash
# Build the IPVS test VM: Debian's kernel (this machine's kernel has no
# IPVS) and an initramfs holding busybox, the IPVS modules, ipvsadm and nft
# with their libraries, the static lbdeploy binary and the scenario.
#
#   tests/vm/build.sh CACHE_DIR LBDEPLOY_BINARY
#
# For other scenarios (bench/check_scale_vm.sh): VM_INIT names another
# /init, VM_BINS more dynamically linked programs to bring with their
# libraries (into /sbin), VM_FILES more files for / (space-separated).
#
# Writes CACHE_DIR/vmlinuz and CACHE_DIR/initrd. The kernel package is
# fetched once (`apt-get download`, running `apt-get update` first if the
# package lists are missing) and only the kernel and the modules the test
# loads are kept, in CACHE_DIR/kernel; later runs reuse them and need no
# network. The initramfs is rebuilt every run (the binary changes).
set -euo pipefail
cache=$1
lbdeploy=$2
here=$(cd "$(dirname "$0")" && pwd)

# What the scenario needs: schedulers it uses (ip_vs_wlc is ipvsadm's
# default, for the service added by hand). crc32c_generic is a soft
# dependency of libcrc32c (it asks the crypto API for "crc32c" at load
# time), so it is named here rather than found in `depends=`.
# ip_vs_mh: the continuity part (both directors pick alike).
# veth and bridge: the traffic part puts network namespaces on a bridge.
# nf_tables (with nfnetlink, from its depends=): the port groups' mark
# table; Debian builds the inet family, meta, payload and every set type
# into it (CONFIG_NF_TABLES_INET=y).
wanted="crc32c_generic ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_wlc ip_vs_mh veth bridge nf_tables"

kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}

fetch_kernel() {
  local pkg tmp
  pkg=$(kernel_pkg)
  if [[ -z $pkg ]]; then
    echo "vm: no package lists yet; apt-get update" >&2
    apt-get update -qq
    pkg=$(kernel_pkg)
  fi
  [[ -n $pkg ]] || { echo "vm: cannot resolve linux-image-amd64" >&2; exit 1; }
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  echo "vm: fetching $pkg" >&2
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
  dpkg -x "$tmp"/*.deb "$tmp/root"
  local mods
  mods=$(echo "$tmp"/root/lib/modules/*)
  rm -rf "$cache/kernel.new"
  mkdir -p "$cache/kernel.new/modules"
  cp "$tmp"/root/boot/vmlinuz-* "$cache/kernel.new/vmlinuz"
  # Load order: each module after its `depends=` (read from .modinfo).
  local order=()
  add() {
    local m=$1 f d
    [[ " ${order[*]} " == *" $m "* ]] && return
    if grep -q "/$m.ko$" "$mods/modules.builtin" 2>/dev/null; then return; fi
    f=$(find "$mods" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
    [[ -n $f ]] || { echo "vm: module $m not in $pkg" >&2; exit 1; }
    case $f in
      *.xz) xz -dc "$f" > "$cache/kernel.new/modules/$m.ko" ;;
      *.zst) zstd -qdc "$f" > "$cache/kernel.new/modules/$m.ko" ;;
      *) cp "$f" "$cache/kernel.new/modules/$m.ko" ;;
    esac
    for d in $(tr '\0' '\n' < "$cache/kernel.new/modules/$m.ko" \
               | sed -n 's/^depends=//p' | tr ',' ' '); do
      add "$d"
    done
    order+=("$m")
  }
  for m in $wanted; do add "$m"; done
  printf '%s\n' "${order[@]}" > "$cache/kernel.new/modules/order"
  echo "$wanted" > "$cache/kernel.new/wanted"
  echo "$pkg" > "$cache/kernel.new/package"
  rm -rf "$cache/kernel"
  mv "$cache/kernel.new" "$cache/kernel"
}

mkdir -p "$cache"
# Fetched again when the modules wanted changed since.
[[ -e $cache/kernel/modules/order && $(cat "$cache/kernel/wanted" 2>/dev/null) == "$wanted" ]] \
  || fetch_kernel

root=$cache/root
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,run,tmp,dev,modules,scenario}
cp /bin/busybox "$root/bin/busybox"
cp "$cache"/kernel/modules/* "$root/modules/"
# ipvsadm, iproute2's ip and nft are dynamically linked: bring their
# libraries and the loader.
for bin in /usr/sbin/ipvsadm "$(command -v ip)" /usr/sbin/nft ${VM_BINS:-}; do
  cp "$bin" "$root/sbin/"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
# The debug binary is ~150 MB of mostly debug info; strip the copy.
strip -o "$root/lbdeploy" "$lbdeploy" 2>/dev/null || cp "$lbdeploy" "$root/lbdeploy"
cp "$here"/scenario/* "$root/scenario/"
cp "${VM_INIT:-$here/init}" "$root/init"
for f in ${VM_FILES:-}; do cp "$f" "$root/"; done
chmod 0755 "$root/init" "$root/lbdeploy"
# Uncompressed newc: the kernel unpacks it without a decompressor, which
# is faster than gunzip under TCG.
(cd "$root" && find . | cpio -o -H newc --quiet) > "$cache/initrd.new"
mv "$cache/initrd.new" "$cache/initrd"
cp "$cache/kernel/vmlinuz" "$cache/vmlinuz"
rm -rf "$root"
