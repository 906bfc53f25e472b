"""Generate the small synthetic 3G throughput traces shipped in ``cost_models/data/traces``.

The project ships its own traces rather than copies of public ones. These are drawn from
the Markov-modulated generator of :mod:`edgesplit.cost_models.links` with 3G/HSDPA
figures (mean 1.30 Mbps, SD 0.99, the statistics of the Norway HSDPA logs; the same
time structure as the ``hsdpa_3g`` class), sampled about once a second with a little
jitter in the timestamps, as the public logs are. The parameters are fixed here (not read
from the catalogue) and the seed is fixed, so the files are reproducible byte for byte:

    python -m edgesplit.cost_models.make_synthetic_traces            # rewrite the files
    python -m edgesplit.cost_models.make_synthetic_traces --out DIR  # write elsewhere

It prints each file's time-weighted mean and SD and those of the whole set, which are the
figures the ``trace_synthetic_3g`` class states in ``links.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgesplit.cost_models.links import LinkClass, LinkProcess, MarkovParams, load_trace

SEED = 20240601
N_TRACES = 4
N_SAMPLES = 400
SAMPLE_S = 1.0  # nominal sampling interval (the Norway logs: about 1.01 s)
JITTER_S = (-0.01, 0.03)  # added to each interval

SOURCE = LinkClass(
    name="synthetic_3g_source",
    kind="markov",
    rtt_s=0.08,
    mean_mbps=1.30,
    sd_mbps=0.99,
    sources={"all": "see edgesplit.cost_models.make_synthetic_traces"},
    params=MarkovParams(n_states=4, dwell_s=40.0, state_share=0.8, noise_tau_s=0.5),
    description="generator behind the shipped synthetic 3G traces",
)


def default_dir() -> Path:
    """The shipped traces folder, ``cost_models/data/traces``."""
    return Path(__file__).resolve().parent / "data" / "traces"


def generate(seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """Draw the traces: a list of ``(times_s, rates_mbps)``, one per trace."""
    rng = np.random.default_rng(seed)
    proc = LinkProcess(SOURCE, slot_s=SAMPLE_S, shape=(N_TRACES,))
    rates = np.empty((N_SAMPLES, N_TRACES))
    rates[0] = proc.reset(rng.random((N_TRACES, proc.n_reset_uniforms)))
    for i in range(1, N_SAMPLES):
        rates[i] = proc.step(rng.random((N_TRACES, proc.n_step_uniforms)))
    dt = SAMPLE_S + rng.uniform(*JITTER_S, size=(N_SAMPLES - 1, N_TRACES))
    times = np.vstack([np.zeros((1, N_TRACES)), np.cumsum(dt, axis=0)])
    return [(times[:, j], rates[:, j]) for j in range(N_TRACES)]


def write(out_dir: Path, seed: int = SEED) -> list[Path]:
    """Write ``synthetic_3g_<i>.tsv`` into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, (t, r) in enumerate(generate(seed)):
        p = out_dir / f"synthetic_3g_{j}.tsv"
        lines = [f"{a:.3f}\t{b:.6f}\n" for a, b in zip(t, r, strict=True)]
        p.write_text("".join(lines), encoding="utf-8")
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: write the traces and print their statistics."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_dir(), help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    traces = [load_trace(p) for p in write(args.out, args.seed)]
    for tr in traces:
        print(
            f"{tr.path}: {tr.n_samples} samples, mean {tr.mean_mbps:.4f} Mbps, SD {tr.sd_mbps:.4f}"
        )
    w = np.concatenate([tr.holding_s / tr.period_s for tr in traces])
    v = np.concatenate([tr.rates_mbps for tr in traces])
    m = np.average(v, weights=w)
    sd = np.sqrt(np.average((v - m) ** 2, weights=w))
    print(f"all (each trace equally weighted): mean {m:.4f} Mbps, SD {sd:.4f}")


if __name__ == "__main__":
    main()
