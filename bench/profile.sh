#!/usr/bin/env bash
# Where the time of a no-op `lbdeploy apply` goes (BENCHMARKS.md, "Where the
# time goes"). One lab of N hosts (default 30), the first apply, then:
#
#   1. one handshake, `ssh HOST true`, with OpenSSH's default key exchange
#      (sntrup761x25519-sha512) and with curve25519-sha256: CPU in the
#      controller and on the host;
#   2. hashing the agent binary on a host, as the facts script does
#      (`sha256sum`), next to `openssl dgst -sha256`;
#   3. `lbdeploy plan --limit rs01`: one host;
#   4. fan-outs to all N hosts, 10 at a time, interleaved REPS times: bare
#      `ssh HOST true`, bare `ssh HOST 'sha256sum < BINARY'`, a no-op
#      `lbdeploy apply --yes`, and the same apply with `KexAlgorithms
#      curve25519-sha256` in the controller's ~/.ssh/config (an operator's
#      setting, not lbdeploy's default);
#   5. with perf: which commands the controller's CPU samples fall in
#      during one no-op apply.
#
#   bash bench/profile.sh [N]        REPS=5 by default
#
# Prints a Markdown report and writes it to bench/profile-DATE.md.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
SIZE=${1:-30}
if ! [[ $REPS =~ ^[0-9]+$ && $REPS -ge 3 ]]; then die "REPS must be >= 3"; fi
check_sizes "$SIZE"
[ "$SIZE" -ge 3 ] || die "the profile needs a real server (N >= 3)"
bench_init
[ -n "$CG" ] || die "the profile needs a writable cpuacct cgroup"

lab_create "$SIZE" profile
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "first apply"
run_ctl first-apply check_apply_first lbdeploy -i "$INV" apply --yes >/dev/null
cg_agents_out
BINARY=/usr/local/sbin/lbdeploy
SIZE_MB=$(awk -v b="$(stat -c %s "$BIN")" 'BEGIN { printf "%.1f", b / 1048576 }')

# The controller's ssh_config, and one that prefers the classic key exchange.
lab exec controller -- sh -c 'cp /root/.ssh/config /root/.ssh/config.default &&
    { echo "KexAlgorithms curve25519-sha256"; cat /root/.ssh/config.default; } \
        >/root/.ssh/config.curve25519'
use_config() { lab exec controller -- cp "/root/.ssh/config.$1" /root/.ssh/config; }

# med KEY: "wall controller hosts" medians in seconds.
med() {
    # shellcheck disable=SC2086 # the samples are words by design
    echo "$(secs "$(median ${SW[$1]})") | $(secs "$(median ${SC[$1]})") | $(secs "$(median ${SH[$1]})")"
}
# per-host CPU of KEY in ms: (controller + hosts) / N
per_host() {
    # shellcheck disable=SC2086
    echo $((($(median ${SC[$1]}) + $(median ${SH[$1]})) / N))
}

NOSSHMUX=(-o ControlMaster=no -o ControlPath=none)
log "single handshakes and hashes"
for ((rep = 1; rep <= REPS; rep++)); do
    sample hs-default ssh-true check_any ssh "${NOSSHMUX[@]}" rs01 true
    sample hs-c25519 ssh-true-c25519 check_any \
        ssh "${NOSSHMUX[@]}" -o KexAlgorithms=curve25519-sha256 rs01 true
    sample plan1 plan-rs01 check_any lbdeploy -i "$INV" plan --limit rs01
done
# Hashing on the host itself, no SSH: CPU of the command (perf-less: time).
hash_ms() {
    lab exec rs01 -- bash -c 'TIMEFORMAT=%3U+%3S; { time "$@" >/dev/null; } 2>&1' _ "$@" |
        awk -F+ '{ printf "%d", ($1 + $2) * 1000 }'
}
HS=() HO=()
for ((rep = 1; rep <= REPS; rep++)); do
    HS+=("$(hash_ms sh -c "sha256sum < $BINARY")")
    HO+=("$(hash_ms openssl dgst -sha256 "$BINARY")")
done

log "fan-outs to all $N hosts, $REPS rounds"
FAN='xargs -n1 -P10 sh -c'
for ((rep = 1; rep <= REPS; rep++)); do
    log "round $rep/$REPS"
    sample fan-true fan-ssh-true check_any sh -c "printf '%s\n' ${HOSTS[*]} |
        $FAN 'ssh ${NOSSHMUX[*]} \$0 true'"
    sample fan-sha fan-ssh-sha check_any sh -c "printf '%s\n' ${HOSTS[*]} |
        $FAN 'ssh ${NOSSHMUX[*]} \$0 \"sha256sum < $BINARY\" >/dev/null'"
    sample apply lbdeploy-apply check_apply_noop lbdeploy -i "$INV" apply --yes
    use_config curve25519
    sample apply-c25519 lbdeploy-apply-c25519 check_apply_noop \
        lbdeploy -i "$INV" apply --yes
    use_config default
done

PERF=''
if command -v perf >/dev/null; then
    log "perf: one no-op apply"
    lab exec controller -- perf record -q -F 499 -o "$DIR/perf.data" \
        lbdeploy -i "$INV" apply --yes >/dev/null 2>&1
    PERF=$(perf report -i "$DIR/perf.data" --sort comm --stdio 2>/dev/null |
        awk '/^ +[0-9.]+%/ && !seen[$2]++ { printf "%s %s, ", $2, $1 }' | sed 's/, $//')
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
lab exec controller -- cp /root/.ssh/config.default /root/.ssh/config
lab_destroy

report() {
    echo "# Where the time of a no-op lbdeploy apply goes ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Command: \`bash bench/profile.sh $SIZE\` (REPS=$REPS); lbdeploy $(lbdeploy_rev)," \
        "release build, binary $SIZE_MB MiB."
    echo
    echo "Machine: $(machine). Load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "Medians of $REPS runs, seconds. CPU from cpuacct cgroups of the benchmark's" \
        "own (bench/lib.sh): *controller* is everything the command forks in the lab" \
        "controller, *hosts* the managed hosts' sshd and what it forks."
    echo
    echo "| What | wall | controller CPU | hosts CPU |"
    echo "|---|---|---|---|"
    echo "| one \`ssh rs01 true\`, default KEX (sntrup761x25519-sha512) | $(med hs-default) |"
    echo "| one \`ssh rs01 true\`, KexAlgorithms=curve25519-sha256 | $(med hs-c25519) |"
    echo "| \`lbdeploy plan --limit rs01\` (one host) | $(med plan1) |"
    echo "| $N × \`ssh HOST true\`, 10 at a time | $(med fan-true) |"
    echo "| $N × \`ssh HOST 'sha256sum < $BINARY'\`, 10 at a time | $(med fan-sha) |"
    echo "| no-op \`lbdeploy apply --yes\`, $N hosts | $(med apply) |"
    echo "| the same, KexAlgorithms=curve25519-sha256 in the controller's ssh_config | $(med apply-c25519) |"
    echo
    echo "CPU per host (controller + hosts): bare handshakes $(per_host fan-true) ms," \
        "handshake + hash $(per_host fan-sha) ms, lbdeploy no-op apply $(per_host apply) ms," \
        "with curve25519-sha256 $(per_host apply-c25519) ms."
    echo
    echo "Hashing the $SIZE_MB MiB agent binary on a host (user + sys, no SSH):" \
        "\`sha256sum\` $(median "${HS[@]}") ms, \`openssl dgst -sha256\` $(median "${HO[@]}") ms" \
        "(SHA extensions: $(grep -q -m1 sha_ni /proc/cpuinfo && echo yes || echo no))."
    echo
    if [ -n "$PERF" ]; then
        echo "perf samples of the controller during one no-op apply, by command: $PERF."
        echo
    fi
    echo "Raw samples (ms, wall/controller/hosts):"
    echo
    local k i w c h
    for k in hs-default hs-c25519 plan1 fan-true fan-sha apply apply-c25519; do
        read -ra w <<<"${SW[$k]}"
        read -ra c <<<"${SC[$k]}"
        read -ra h <<<"${SH[$k]}"
        printf -- '- %s:' "$k"
        for i in "${!w[@]}"; do printf ' %s/%s/%s' "${w[$i]}" "${c[$i]}" "${h[$i]}"; done
        echo
    done
}

RESULTS=$ROOT/bench/profile-$(date +%F).md
report | tee "$RESULTS"
log "written to $RESULTS"
