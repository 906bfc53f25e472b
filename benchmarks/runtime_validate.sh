#!/usr/bin/env bash
# Sim-to-real on this machine (issue 10): for each network, measure its per-candidate
# profile with each engine (`profile_candidates`, one thread), then run `validate` at each
# rate against that profile, writing one JSON report per run and a log with the load.
# docs/runtime.md ("Sim-to-real: validate") has the tables made with it.
#
#   benchmarks/runtime_validate.sh OUT_DIR
#
# Environment: PYTHON (default python3), NETWORKS (default: the five shipped networks),
# RATES (default "5 20 100" Mbps), ENGINES (default "onnxruntime torch"), ROUNDS (default
# 20), REPS (default 9), PARALLEL (run the networks side by side, each pinned to its own
# pair of cores: 2 and 3, 4 and 5, ...; default 1 where the machine has those cores, two per
# network and two more, and taskset, else 0). Each profile
# starts from the shipped one (its graph and kept candidates) and gains the measured classes
# x86_cpu_1t_ort and x86_cpu_1t_torch.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
PY=${PYTHON:-python3}
NETWORKS=${NETWORKS:-"resnet18 mobilenet_v2 alexnet resnet50 vgg16"}
RATES=${RATES:-"5 20 100"}
ENGINES=${ENGINES:-"onnxruntime torch"}
ROUNDS=${ROUNDS:-20}
REPS=${REPS:-9}
source "$(dirname "$0")/runtime_common.sh"
nets=($NETWORKS)
need=$((2 * ${#nets[@]} + 2))  # network i runs on cores 2 i + 2 and 2 i + 3
PARALLEL=$(pinned_parallel PARALLEL "${PARALLEL:-}" "$need" \
    "${#nets[@]} networks on cores 2 to $((need - 1))") || exit 2
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$out"
log=$out/log.txt
say_machine

one_network() {  # NETWORK [CORES]
    local n=$1 pin=()
    [ -n "${2:-}" ] && pin=(taskset -c "$2")
    local prof=$out/$n.json
    "$PY" -c "import shutil, sys; from importlib import resources; shutil.copy(\
resources.files('edgesplit.cost_models.profiles') / (sys.argv[1] + '.json'), sys.argv[2])" \
        "$n" "$prof"
    for e in $ENGINES; do
        local cls=x86_cpu_1t_ort
        [ "$e" = torch ] && cls=x86_cpu_1t_torch
        say "profile $n $e ${2:+on cores $2}"
        ${pin[@]+"${pin[@]}"} "$PY" -m edgesplit.cost_models.profile_candidates "$n" --engine "$e" \
            --out "$prof" --merge --rounds "$ROUNDS" --warmup 3 >>"$out/profile_log.txt" 2>&1
        for r in $RATES; do
            say "validate $n $e $r Mbps"
            ${pin[@]+"${pin[@]}"} "$PY" -m edgesplit.runtime validate --network "$n" --rate-mbps "$r" \
                --profile "$prof" --engine "$e" --device-class "$cls" --reps "$REPS" --json \
                >"$out/${e}_${n}_${r}.json" 2>>"$out/validate_err.txt"
        done
    done
}

if [ "$PARALLEL" = 1 ]; then
    i=0
    pids=()
    for n in $NETWORKS; do
        one_network "$n" "$((2 * i + 2)),$((2 * i + 3))" &
        pids+=($!)
        i=$((i + 1))
    done
    wait_all ${pids[@]+"${pids[@]}"}
    if [ "$failed" -gt 0 ]; then
        say "$failed network(s) failed: see $out/profile_log.txt and $out/validate_err.txt"
        exit 1
    fi
else
    for n in $NETWORKS; do one_network "$n"; done
fi
say "all done"
