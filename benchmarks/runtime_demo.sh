#!/usr/bin/env bash
# The runtime's closed loop (issue 10) on a machine with a core per server process:
# profile this machine's CPU (class x86_cpu_1t, per node, one thread) for the networks of the
# policies' scenario, then run `python -m edgesplit.runtime demo` for each policy and seed,
# writing one JSON report per run (per-task figures included) and a log with the machine and
# its load. docs/runtime.md ("On a machine with a core per server" and "On the slot clock")
# has runs of it.
#
#   benchmarks/runtime_demo.sh OUT_DIR POLICY_DIR [POLICY_DIR ...]
#
# Environment: PYTHON (default python3), DURATION_S (default 20), SEEDS (default "0 1 2"),
# NETWORKS (default: the five shipped networks), ROUNDS (profile rounds, default 20),
# PARALLEL_PROFILES (profile the networks side by side, one core each: cores 1, 3, 5, ...;
# default 1 where the machine has those cores, twice as many as networks, and taskset, else
# 0), PAIRED (1: the i-th policy runs on the i-th seed alone instead of every seed), CLOCK
# (the demo's --clock: slot, the default, or arrival), ARRIVAL_SCALE (the demo's
# --arrival-scale, default 1: multiplies every device's arrival rate). A network already
# profiled in OUT_DIR/profiles is not profiled again, so a second call adds runs against
# the same profiles.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT_DIR POLICY_DIR [POLICY_DIR ...]" >&2
    exit 2
fi
out=$1
shift
PY=${PYTHON:-python3}
DURATION_S=${DURATION_S:-20}
SEEDS=${SEEDS:-"0 1 2"}
NETWORKS=${NETWORKS:-"resnet18 mobilenet_v2 alexnet resnet50 vgg16"}
ROUNDS=${ROUNDS:-20}
source "$(dirname "$0")/runtime_common.sh"
nets=($NETWORKS)
need=$((2 * ${#nets[@]}))  # network i profiles on core 2 i + 1
PARALLEL_PROFILES=$(pinned_parallel PARALLEL_PROFILES "${PARALLEL_PROFILES:-}" "$need" \
    "${#nets[@]} networks on cores 1, 3, ..., $((need - 1))") || exit 2
PAIRED=${PAIRED:-0}
CLOCK=${CLOCK:-slot}
ARRIVAL_SCALE=${ARRIVAL_SCALE:-1}
case $CLOCK in slot|arrival) ;; *) echo "CLOCK: '$CLOCK': expected slot or arrival" >&2; exit 2;; esac
seeds=($SEEDS)
if [ "$PAIRED" = 1 ] && [ "${#seeds[@]}" -lt $# ]; then  # before any profiling
    echo "SEEDS: PAIRED=1 needs a seed per policy; got ${#seeds[@]} for $# policies" >&2
    exit 2
fi
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$out/profiles"
log=$out/log.txt

for p in "$@"; do
    if [ ! -f "$p/policy.json" ]; then
        echo "policy: no policy.json in $p" >&2
        exit 2
    fi
done
say_machine
say "python: $($PY -c 'import sys, numpy, torch, onnxruntime as o; print(sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__, "onnxruntime", o.__version__)')"

# 1. this CPU's per-node profile of every network (the demo's servers compute the tails here)
i=0
pids=()
for n in $NETWORKS; do
    if [ -s "$out/profiles/$n.json" ]; then
        say "profile $n: kept from an earlier call"
        continue
    fi
    cmd=("$PY" -m edgesplit.cost_models.profile "$n" --device-class x86_cpu_1t
         --out "$out/profiles/$n.json" --rounds "$ROUNDS")
    if [ "$PARALLEL_PROFILES" = 1 ]; then
        say "profile $n on core $((2 * i + 1))"
        taskset -c $((2 * i + 1)) "${cmd[@]}" >>"$out/profiles/log.txt" 2>&1 &
        pids+=($!)
        i=$((i + 1))
    else
        say "profile $n"
        "${cmd[@]}" >>"$out/profiles/log.txt" 2>&1
    fi
done
wait_all ${pids[@]+"${pids[@]}"}
if [ "$failed" -gt 0 ]; then
    say "$failed profile(s) failed: see $out/profiles/log.txt"
    exit 1
fi
say "profiles done"

# 2. the demo: each policy on each seed's arrivals, the policy and Neurosurgeon in turn
k=0
for p in "$@"; do
    mine=(${seeds[@]+"${seeds[@]}"})
    if [ "$PAIRED" = 1 ]; then
        mine=("${seeds[$k]}")
    fi
    for s in ${mine[@]+"${mine[@]}"}; do
        say "demo policy $p seed $s clock $CLOCK arrival scale $ARRIVAL_SCALE"
        "$PY" -m edgesplit.runtime demo --policy "$p" --duration-s "$DURATION_S" --seed "$s" \
            --profile-dir "$out/profiles" --clock "$CLOCK" \
            --arrival-scale "$ARRIVAL_SCALE" --per-task --json >"$out/demo_p${k}_s${s}.json" \
            2>>"$out/demo_err.txt"
        say "demo done ($(wc -c <"$out/demo_p${k}_s${s}.json") bytes)"
    done
    k=$((k + 1))
done
say "all done"
