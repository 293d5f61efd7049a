#!/usr/bin/env bash
# Benchmark `lbdeploy plan` and a no-op `lbdeploy apply` against Ansible,
# in the same run, over lab clusters of N hosts (issue #4, "Performance").
#
#   bash bench/apply.sh            # N = 2 10 30
#   bash bench/apply.sh 4 16       # other sizes
#   REPS=7 bash bench/apply.sh     # more repetitions (default 5, at least 3)
#
# Each N gets its own lab (bench/lib.sh): 2 directors, N-2 real servers, the
# controller and the client, each a network namespace with its own sshd.
# Every command runs inside the controller and reaches the hosts over real
# SSH. Per N:
#
#   1. `lbdeploy apply --yes` once: the first apply, which installs everything;
#   2. REPS rounds, tools interleaved so that load from anything else on the
#      machine hits both alike: `lbdeploy plan`, a no-op `lbdeploy apply
#      --yes` (--forks 10, the default, and --forks N), `ansible-playbook
#      --check --diff`, and a no-op `ansible-playbook` (-f 10 with warm
#      ControlPersist masters, -f 10 cold, -f N warm). Every run is checked:
#      lbdeploy must report every host unchanged/ok, Ansible changed=0 on
#      every host; anything else aborts the benchmark;
#   3. a final `lbdeploy plan` proves that Ansible left every host exactly as
#      lbdeploy wants it.
#
# Each run records its wall-clock time and, through cpuacct cgroups of its
# own, the CPU time spent in the controller and on the hosts (bench/lib.sh).
#
# The Ansible playbook manages what lbdeploy manages on a host without
# systemd: the agent binary, agent.yml, the sysctl.d file (real servers), the
# live ARP sysctls and a running agent, with the file contents and modes
# taken from the hosts after lbdeploy's first apply. See BENCHMARKS.md.
#
# Prints a Markdown report and writes it to bench/results-DATE.md.
# Needs root. Installs ansible-core with pip into a venv in the work
# directory unless an `ansible-playbook` usable inside the lab is on PATH.
# Always takes its labs down, also on failure or Ctrl-C. KEEP=1 keeps the
# work directory (the output of every run) for inspection.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPS=${REPS:-5}
FORKS=10
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(2 10 30); fi
if ! [[ $REPS =~ ^[0-9]+$ && $REPS -ge 3 ]]; then die "REPS must be >= 3"; fi
check_sizes "${SIZES[@]}"
bench_init

# The Ansible side: inventory with what each host must hold, as lbdeploy's
# first apply left it (contents fetched from the hosts, modes from stat).
write_ansible() {
    local h role files=$DIR/files
    mkdir -p "$files"
    {
        echo "all:"
        echo "  vars:"
        echo "    ansible_python_interpreter: /usr/bin/python3"
        echo "    lbdeploy_binary: $BIN"
        echo "  hosts:"
    } >"$DIR/hosts.yml"
    for h in "${HOSTS[@]}"; do
        mkdir -p "$files/$h"
        case $h in dir*) role=director ;; *) role=realserver ;; esac
        lab exec "$h" -- cat /etc/lbdeploy/agent.yml >"$files/$h/agent.yml"
        local bmode cmode sysctls='[]'
        bmode=$(lab exec "$h" -- stat -c %a /usr/local/sbin/lbdeploy)
        cmode=$(lab exec "$h" -- stat -c %a /etc/lbdeploy/agent.yml)
        if [ "$role" = realserver ]; then
            lab exec "$h" -- cat /etc/sysctl.d/90-lbdeploy.conf \
                >"$files/$h/90-lbdeploy.conf"
            sysctls="[$(grep -v '^#' "$files/$h/90-lbdeploy.conf" |
                sed -n 's/^\([^ ]*\) = \(.*\)$/"\1=\2"/p' | paste -sd,)]"
        fi
        {
            echo "    $h:"
            echo "      agent_mode: $role"
            echo "      binary_mode: \"0$bmode\""
            echo "      config_mode: \"0$cmode\""
            echo "      sysctls: $sysctls"
        } >>"$DIR/hosts.yml"
    done
    cat >"$DIR/site.yml" <<EOF
# What \`lbdeploy apply\` manages on a host without systemd, as Ansible tasks.
# Equivalent idempotency checks: file content (checksums on both sides) and
# mode, the live sysctls, a running agent. The probe is read-only and runs in
# --check mode too, as lbdeploy's facts script does for \`plan\`.
- name: lbdeploy-managed state
  hosts: all
  gather_facts: false
  tasks:
    - name: agent binary
      ansible.builtin.copy:
        src: "{{ lbdeploy_binary }}"
        dest: /usr/local/sbin/lbdeploy
        mode: "{{ binary_mode }}"
    - name: agent configuration
      ansible.builtin.copy:
        src: "$files/{{ inventory_hostname }}/agent.yml"
        dest: /etc/lbdeploy/agent.yml
        mode: "{{ config_mode }}"
    - name: ARP suppression, persistent
      ansible.builtin.copy:
        src: "$files/{{ inventory_hostname }}/90-lbdeploy.conf"
        dest: /etc/sysctl.d/90-lbdeploy.conf
        mode: "0644"
      when: agent_mode == 'realserver'
    - name: probe the live sysctls and the agent (one round trip)
      ansible.builtin.shell: |
        for kv in {{ sysctls | join(' ') }}; do
          k=\${kv%%=*}; v=\${kv#*=}
          [ "\$(cat /proc/sys/\$(echo "\$k" | tr . /) 2>/dev/null)" = "\$v" ] || echo "sysctl \$kv"
        done
        if [ -r /run/lbdeploy/agent.pid ] && kill -0 "\$(cat /run/lbdeploy/agent.pid)" 2>/dev/null
        then echo "agent running"; else echo "agent stopped"; fi
      register: probe
      changed_when: false
      check_mode: false
    - name: ARP suppression, live
      ansible.builtin.command: "sysctl -w {{ item | regex_replace('^sysctl ', '') }}"
      loop: "{{ probe.stdout_lines | select('match', '^sysctl ') | list }}"
    - name: agent started
      ansible.builtin.command: >-
        /usr/local/sbin/lbdeploy agent start {{ agent_mode }}
        --config /etc/lbdeploy/agent.yml
      when: "'agent stopped' in probe.stdout_lines"
EOF
    cat >"$DIR/ansible.cfg" <<EOF
[defaults]
inventory = $DIR/hosts.yml
forks = $FORKS
gathering = explicit
host_key_checking = True
retry_files_enabled = False
nocows = 1

[ssh_connection]
# ssh_args stays Ansible's default: -C -o ControlMaster=auto -o ControlPersist=60s
pipelining = True
EOF
}

# ansible_cmd CONTROL_PATH_DIR ARGS...: set ANSIBLE_CMD to an ansible-playbook
# run with masters in CONTROL_PATH_DIR.
ansible_cmd() {
    local cp=$1
    shift
    ANSIBLE_CMD=(env "ANSIBLE_CONFIG=$DIR/ansible.cfg"
        "ANSIBLE_SSH_CONTROL_PATH_DIR=$cp" ANSIBLE_NOCOLOR=1
        "$ANSIBLE_PLAYBOOK" "$DIR/site.yml" "$@")
}

# --------------------------------------------------------------- ansible --

ANSIBLE_PLAYBOOK=$(command -v ansible-playbook || true)
case $ANSIBLE_PLAYBOOK in
/root/* | /run/* | '')
    # Lab hosts have their own /root and /run: a pyenv shim or a venv there
    # is not visible inside the controller. The system python is.
    log "installing ansible-core into a venv (pip)"
    /usr/bin/python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check ansible-core
    ANSIBLE_PLAYBOOK=$WORK/venv/bin/ansible-playbook
    ;;
esac
ANSIBLE_VERSION=$("$ANSIBLE_PLAYBOOK" --version | sed -n 1p)

# ------------------------------------------------------------------ runs --

declare -A W C H  # [key,N] = median wall / controller CPU / hosts CPU, ms
declare -A RAW    # [key,N] = the samples, "wall/controller/hosts" each
declare -A LOADS  # [N] = 1-minute load average at the start of each round
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# measure KEY LABEL CHECK CMD...: one timed run (lib.sh's sample), its
# samples kept under KEY and, raw, under KEY,N.
measure() {
    sample "$@"
    RAW[$1,$N]+=" $LAST_SAMPLE"
}
# once KEY LABEL CHECK CMD...: a single run, recorded as is.
once() {
    local key=$1 r
    shift
    r=$(run_ctl "$@")
    read -r "W[$key,$N]" "C[$key,$N]" "H[$key,$N]" <<<"$r"
}

for N in "${SIZES[@]}"; do
    lab_create "$N"
    W[labup,$N]=$LABUP_MS

    log "N=$N: first apply"
    once first first-apply check_apply_first lbdeploy -i "$INV" apply --yes
    cg_agents_out

    log "N=$N: fetching what lbdeploy installed, for the playbook"
    write_ansible
    log "N=$N: first ansible-playbook run (must already be a no-op)"
    ansible_cmd "$DIR/cp-warm"
    once afirst ansible-first check_ansible_noop "${ANSIBLE_CMD[@]}"
    cg_agents_out

    SW=() SC=() SH=()
    for ((rep = 1; rep <= REPS; rep++)); do
        LOADS[$N]+=" $(cut -d' ' -f1 /proc/loadavg)"
        log "N=$N: round $rep/$REPS"
        measure plan lbdeploy-plan check_plan_noop lbdeploy -i "$INV" plan
        measure apply lbdeploy-apply check_apply_noop \
            lbdeploy -i "$INV" apply --yes
        measure applyN lbdeploy-apply-forksN check_apply_noop \
            lbdeploy -i "$INV" apply --yes --forks "$N"
        ansible_cmd "$DIR/cp-warm" --check --diff
        measure acheck ansible-check check_ansible_noop "${ANSIBLE_CMD[@]}"
        ansible_cmd "$DIR/cp-warm"
        measure awarm ansible-warm check_ansible_noop "${ANSIBLE_CMD[@]}"
        ansible_cmd "$DIR/cp-cold-$rep"
        measure acold ansible-cold check_ansible_noop "${ANSIBLE_CMD[@]}"
        lab exec controller -- bash "$WORK/close-masters" "$DIR/cp-cold-$rep"
        ansible_cmd "$DIR/cp-warm" -f "$N"
        measure awarmN ansible-warm-forksN check_ansible_noop "${ANSIBLE_CMD[@]}"
    done
    for k in "${!SW[@]}"; do
        # shellcheck disable=SC2086 # the samples are words by design
        {
            W[$k,$N]=$(median ${SW[$k]})
            C[$k,$N]=$(median ${SC[$k]})
            H[$k,$N]=$(median ${SH[$k]})
        }
    done

    log "N=$N: checking that Ansible left every host as lbdeploy wants it"
    run_ctl lbdeploy-plan-after check_plan_noop \
        lbdeploy -i "$INV" plan >/dev/null
    lab exec controller -- bash "$WORK/close-masters" "$DIR/cp-warm"
    lab_destroy
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report --

# cpu KEY N: "controller + hosts" CPU seconds.
cpu() { echo "$(secs "${C[$1,$2]}") + $(secs "${H[$1,$2]}")"; }
# cpu_ratio A B N: total CPU of A over total CPU of B.
cpu_ratio() {
    case ${C[$1,$3]}${C[$2,$3]} in
    *n/a*) echo n/a ;;
    *) ratio $((C[$1,$3] + H[$1,$3])) $((C[$2,$3] + H[$2,$3])) ;;
    esac
}

report() {
    local n
    echo "# lbdeploy vs Ansible: plan and no-op apply ($(date -u +'%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Command: \`bash bench/apply.sh ${SIZES[*]}\` (REPS=$REPS); lbdeploy" \
        "$(lbdeploy_rev), release build; $ANSIBLE_VERSION."
    echo
    echo "Machine: $(machine). Load average (1, 5, 15 min) before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "Medians of $REPS runs. Both tools work on $FORKS hosts at once unless" \
        "forks=N is said. Ansible: gather_facts off, pipelining on, ControlPersist=60s" \
        "(its default); *warm* reuses the SSH masters of the previous run, *cold*" \
        "starts without any, as every lbdeploy run does."
    echo
    echo "## Wall-clock seconds"
    echo
    echo "| N | lbdeploy plan | lbdeploy no-op apply | per host (ms) | ansible --check --diff | ansible no-op (warm) | ansible no-op (cold) | ratio no-op warm | ratio no-op cold | ratio check/plan |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for n in "${SIZES[@]}"; do
        echo "| $n | $(secs "${W[plan,$n]}") | $(secs "${W[apply,$n]}") | $((W[apply,$n] / n)) | $(secs "${W[acheck,$n]}") | $(secs "${W[awarm,$n]}") | $(secs "${W[acold,$n]}") | $(ratio "${W[awarm,$n]}" "${W[apply,$n]}") | $(ratio "${W[acold,$n]}" "${W[apply,$n]}") | $(ratio "${W[acheck,$n]}" "${W[plan,$n]}") |"
    done
    echo
    echo "With forks = N (every host at once):"
    echo
    echo "| N | lbdeploy no-op apply --forks N | ansible no-op -f N (warm) | ratio |"
    echo "|---|---|---|---|"
    for n in "${SIZES[@]}"; do
        echo "| $n | $(secs "${W[applyN,$n]}") | $(secs "${W[awarmN,$n]}") | $(ratio "${W[awarmN,$n]}" "${W[applyN,$n]}") |"
    done
    echo
    echo "## CPU seconds: controller + hosts"
    echo
    echo "Counted by cpuacct cgroups of the benchmark's own, so other load on the" \
        "machine does not leak in. *Controller*: everything the command forks in the" \
        "controller (ssh clients and masters included). *Hosts*: the managed hosts'" \
        "sshd and everything it forks (handshakes, the commands run over SSH)." \
        "In the lab all of it shares the machine's $(nproc) cores; on real hosts only" \
        "the controller's part would."
    echo
    echo "| N | lbdeploy plan | lbdeploy no-op apply | ansible --check --diff | ansible no-op (warm) | ansible no-op (cold) | ratio total no-op warm | ratio total no-op cold |"
    echo "|---|---|---|---|---|---|---|---|"
    for n in "${SIZES[@]}"; do
        echo "| $n | $(cpu plan "$n") | $(cpu apply "$n") | $(cpu acheck "$n") | $(cpu awarm "$n") | $(cpu acold "$n") | $(cpu_ratio awarm apply "$n") | $(cpu_ratio acold apply "$n") |"
    done
    echo
    echo "## Once per N"
    echo
    echo "Single runs: \`lab up\`, the first \`lbdeploy apply\` (installs everything)," \
        "the first Ansible run (cold; already a no-op). Wall-clock seconds, then CPU."
    echo
    echo "| N | lab up | lbdeploy first apply | CPU | ansible first run | CPU |"
    echo "|---|---|---|---|---|---|"
    for n in "${SIZES[@]}"; do
        echo "| $n | $(secs "${W[labup,$n]}") | $(secs "${W[first,$n]}") | $(cpu first "$n") | $(secs "${W[afirst,$n]}") | $(cpu afirst "$n") |"
    done
    echo
    echo "## Raw samples"
    echo
    echo "Each run as wall/controller CPU/hosts CPU in ms; the 1-minute load average at the start of each round."
    echo
    for n in "${SIZES[@]}"; do
        echo "- N=$n load:${LOADS[$n]}"
        for k in plan apply applyN acheck awarm acold awarmN; do
            echo "- N=$n $k:${RAW[$k,$n]}"
        done
    done
}

RESULTS=$ROOT/bench/results-$(date +%F).md
report | tee "$RESULTS"
log "written to $RESULTS"
