# Sourced by benchmarks/runtime_validate.sh and benchmarks/runtime_demo.sh (not run alone):
# the machine's core count, whether runs may be pinned side by side, and the timestamped log.

ncpu=$(getconf _NPROCESSORS_ONLN)  # not nproc: it obeys OMP_NUM_THREADS

# pinned_parallel NAME VALUE NEED WHERE: prints 1 or 0 for the setting NAME (VALUE as the
# user gave it, empty for "decide"): 1 by default where the machine has NEED cores and
# taskset; exits 2 where the user asked for 1 and NEED cores (WHERE says which) are missing.
pinned_parallel() {
    local name=$1 value=$2 need=$3 where=$4
    if [ -z "$value" ]; then
        [ "$ncpu" -ge "$need" ] && command -v taskset >/dev/null && echo 1 || echo 0
    elif [ "$value" = 1 ] && [ "$ncpu" -lt "$need" ]; then
        echo "$name=1: $where need $need cores; this machine has $ncpu" >&2
        exit 2
    else
        echo "$value"
    fi
}

# say MESSAGE...: the message with the time and the load average, on stdout and in $log
say() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) | $*" | tee -a "$log"; }

say_machine() { say "machine: $ncpu cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; }

# wait_all PID...: waits for every PID (all of them, so that none is left running) and sets
# $failed to how many exited non-zero (not in a subshell: only this shell can wait for them)
wait_all() {
    local pid
    failed=0
    for pid in "$@"; do wait "$pid" || failed=$((failed + 1)); done
}
