"""How close PuzzleMix's on-device labelling comes to the exact minimum.

For many random cases per block grid (2x2, 4x4, 8x8) and label count (2, 3,
4), the energy each solver reaches is compared with the exact minimum:

- `exact`: `puzzle_mix.solve_exact` (dynamic programming over the rows; the
  layer's solver wherever `n_labels ** side <= 6561`);
- `local`: `puzzle_mix.solve_local` (local search of exact moves, 4
  sweeps; the layer's fallback beyond that);
- `gco_swap`: the reference's solver, gco's alpha-beta swap
  (`gco.cut_grid_graph(..., algorithm="swap")` from `gco-wrapper`) on the
  reference's int32 quantisation of the same energy (`graphcut_multi`),
  evaluated back on the float energy. Skipped when gco-wrapper is missing.

The exact minimum is brute force where it can be enumerated (2x2 grids;
4x4 with 2 labels: 65,536 labellings) and the exact solver elsewhere (it is
checked against brute force where both run, `exact_vs_brute_force`); for
8x8 with 4 labels (65,536 row states) the exact solver runs only here, not
in the layer.

Two families of cases:

- `puzzlemix`: the reference's energy (`energy_terms`) for image pairs with
  structure (cumulated noise in [0, 1]) and a Gaussian saliency blob plus
  noise per image, `lam ~ U(0, 1)`, the CIFAR settings (`beta=1.2,
  gamma=0.5, eta=0.2, neigh_size=4`) on 32x32 images;
- `random`: unary costs uniform in [0, 1), edge weights in [0, 0.5) (a
  harder, less structured family, the one the tests use), divided by the
  number of blocks as the reference's terms are (so that gco's int32
  quantisation, 1000 per block, neither overflows nor rounds them away).

The gap of a solver on a case is `(E - E*) / E*` (energies are positive).
Reported per family, grid and label count: mean and max gap, and the share
of cases at the minimum (gap <= 1e-6).

    KERAS_BACKEND=jax python benchmarks/puzzle_energy.py            # 200 cases
    KERAS_BACKEND=jax python benchmarks/puzzle_energy.py --quick    # smoke

Writes `benchmarks/results/puzzle_energy.json` and `.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from _report import write_report

# The NumPy references of the energy and the exact minimum live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from puzzle_oracles import brute_force_np, energy_np

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_sumix._keras_compat import DynamicBackend
from keras_sumix.layers import puzzle_mix as pm

RESULTS = Path(__file__).resolve().parent / "results"
GRIDS = (2, 4, 8)
LABELS = (2, 3, 4)
AT_MINIMUM = 1e-6
SETTINGS = {"beta": 1.2, "gamma": 0.5, "eta": 0.2, "neigh_size": 4, "size": 32}

try:
    import gco
except ImportError:  # gco-wrapper is optional
    gco = None


def _gco_version():
    if gco is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gco-wrapper")
    except PackageNotFoundError:
        return "installed"


def _ops():
    return DynamicBackend()


def _compiled(fn):
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _smooth_images(rng, n, size):
    x = np.cumsum(np.cumsum(rng.random((n, size, size, 3)), 1), 2)
    x -= x.min(axis=(1, 2, 3), keepdims=True)
    return (x / x.max(axis=(1, 2, 3), keepdims=True)).astype("float32")


def _saliency(rng, n, size):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(0, size, (2, n))
    width = rng.uniform(0.02, 0.2, n) * size * size
    d = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
    blob = np.exp(-d / width[:, None, None])
    return (blob + 0.2 * rng.random((n, size, size))).astype("float32")


def puzzlemix_terms(rng, n, side, n_labels):
    """The reference's energy for `n` random image pairs (numpy arrays)."""
    ops = _ops()
    size, neigh = SETTINGS["size"], SETTINGS["neigh_size"]
    x = ops.convert_to_tensor(_smooth_images(rng, n, size))
    sal = ops.convert_to_tensor(_saliency(rng, n, size))
    perm = ops.convert_to_tensor(np.roll(np.arange(n), 1).astype("int32"))
    layout = pm.grid_layout(size, size, side, neigh, -1)
    own = pm._pool(ops, x, size // layout.neigh[0], size // layout.neigh[1])
    vertical, horizontal = pm.smoothness_tables(
        ops, own, ops.numpy.take(own, perm, axis=0), side
    )
    blocks = pm._normalised(ops, pm._pool(ops, sal, side, side))
    lam = ops.convert_to_tensor(rng.random(n).astype("float32"))
    terms = pm.energy_terms(
        ops,
        blocks,
        ops.numpy.take(blocks, perm, axis=0),
        vertical,
        horizontal,
        lam,
        n_labels,
        SETTINGS["beta"],
        SETTINGS["gamma"],
        SETTINGS["eta"],
    )
    return tuple(np.asarray(keras.ops.convert_to_numpy(t)) for t in terms)


def random_terms(rng, n, side, n_labels):
    scale = 1.0 / side**2
    unary = rng.random((n, side, side, n_labels)) * scale
    w_v = rng.uniform(0.0, 0.5, (n, side - 1, side)) * scale
    w_h = rng.uniform(0.0, 0.5, (n, side, side - 1)) * scale
    return tuple(a.astype("float32") for a in (unary, w_v, w_h))


def gco_labels(unary, w_v, w_h):
    """The reference's `graphcut_multi` on one sample (its quantisation)."""
    side, n_labels = unary.shape[0], unary.shape[-1]
    large = 1000 * side**2
    levels = np.arange(n_labels)
    pairwise = ((levels[:, None] - levels[None, :]) ** 2 / (n_labels - 1) ** 2).astype(
        "float32"
    )
    return gco.cut_grid_graph(
        (large * unary).astype(np.int32),
        pairwise,
        (large * w_v).astype(np.int32),
        (large * w_h).astype(np.int32),
        algorithm="swap",
    ).reshape(side, side)


def _gaps(energies, best):
    gap = (energies - best) / np.abs(best)
    return {
        "mean_gap": float(gap.mean()),
        "max_gap": float(gap.max()),
        "share_at_minimum": float(np.mean(gap <= AT_MINIMUM)),
        "min_gap": float(gap.min()),
    }


def run_case(family, side, n_labels, cases, seed):
    rng = np.random.default_rng(seed)
    make = puzzlemix_terms if family == "puzzlemix" else random_terms
    unary, w_v, w_h = make(rng, cases, side, n_labels)
    ops = _ops()
    t = [ops.convert_to_tensor(a) for a in (unary, w_v, w_h)]
    row = {"family": family, "grid": side, "n_labels": n_labels, "cases": cases}
    states = n_labels**side
    row["layer_solver"] = "exact" if states <= pm.EXACT_STATES else "local"
    solved = {}
    timing = {}
    if states <= pm.MAX_EXACT_STATES:
        # In chunks: 65,536 row states take 1 MB per case and row.
        chunk = cases if states <= pm.EXACT_STATES else 25
        exact = _compiled(lambda u, v, h: pm.solve_exact(ops, u, v, h))
        exact(*(a[:chunk] for a in t))
        start = time.perf_counter()
        solved["exact"] = np.concatenate(
            [
                np.asarray(
                    keras.ops.convert_to_numpy(exact(*(a[i : i + chunk] for a in t)))
                )
                for i in range(0, cases, chunk)
            ]
        )
        timing["exact"] = time.perf_counter() - start
    local = _compiled(lambda u, v, h: pm.solve_local(ops, u, v, h, sweeps=4))
    labels = local(*t)
    start = time.perf_counter()
    labels = local(*t)
    solved["local"] = np.asarray(keras.ops.convert_to_numpy(labels))
    timing["local"] = time.perf_counter() - start
    if gco is not None:
        start = time.perf_counter()
        solved["gco_swap"] = np.stack(
            [gco_labels(unary[i], w_v[i], w_h[i]) for i in range(cases)]
        )
        timing["gco_swap"] = time.perf_counter() - start
    energies = {k: energy_np(unary, w_v, w_h, v) for k, v in solved.items()}
    if n_labels ** (side * side) <= 65536:
        best = np.array(
            [brute_force_np(unary[i], w_v[i], w_h[i])[1] for i in range(cases)]
        )
        row["minimum"] = "brute_force"
        if "exact" in energies:
            row["exact_vs_brute_force_max_gap"] = _gaps(energies["exact"], best)[
                "max_gap"
            ]
    else:
        best = energies["exact"]
        row["minimum"] = "exact_solver"
    row["solvers"] = {k: _gaps(e, best) for k, e in energies.items()}
    # Wall seconds for all the cases (compiled, after a first call; gco: one
    # sample at a time, as the reference calls it).
    row["seconds"] = {k: round(v, 4) for k, v in timing.items()}
    return row


def layer_timing(batch=128, size=32, rounds=5):
    """Seconds per `PuzzleMix.mix` of a `batch x size x size x 3` batch
    with a given saliency, compiled (`jax.jit` under JAX), per block grid
    (the default settings otherwise); median of `rounds` calls."""
    from keras_sumix.layers.puzzle_mix import PuzzleMix

    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(_smooth_images(rng, batch, size))
    sal = keras.ops.convert_to_tensor(_saliency(rng, batch, size))
    out = {}
    for k, side in enumerate(GRIDS, start=1):
        layer = PuzzleMix(seed=0, block_num=(k, k + 1))
        layer.build(x.shape)
        state = [v.value for v in layer.non_trainable_variables]

        def mix(state, images, saliency, layer=layer):
            mapping = list(zip(layer.non_trainable_variables, state, strict=True))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                result = layer.mix(images, saliency=saliency)
            new = [scope.get_current_value(v) for v in layer.non_trainable_variables]
            return result.images, new

        fn = _compiled(mix)
        images, state = fn(state, x, sal)
        keras.ops.convert_to_numpy(images)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            images, state = fn(state, x, sal)
            keras.ops.convert_to_numpy(images)
            times.append(time.perf_counter() - start)
        out[f"{side}x{side}"] = round(float(np.median(times)), 4)
    return out


def _markdown(report):
    lines = [
        "# PuzzleMix labelling: energy gap to the exact minimum",
        "",
        f"{report['cases']} cases per row; gap = (E - E*) / E*; 'at min' = share "
        f"of cases with gap <= {AT_MINIMUM:g}. E* is brute force where "
        "enumerable, else the exact solver. `layer` is the solver the layer "
        "uses there (solver='auto'). gco: "
        + ("gco-wrapper " + report["gco"] if report["gco"] else "not installed")
        + ".",
        "",
        "| family | grid | labels | E* | layer | exact: mean / max gap, at min "
        "| local (4 sweeps): mean / max, at min | gco swap (reference): mean / max, "
        "at min |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(row, key):
        s = row["solvers"].get(key)
        if s is None:
            return "-"
        return f"{s['mean_gap']:.2e} / {s['max_gap']:.2e}, {s['share_at_minimum']:.1%}"

    for row in report["rows"]:
        lines.append(
            f"| {row['family']} | {row['grid']}x{row['grid']} | {row['n_labels']} "
            f"| {row['minimum'].replace('_', ' ')} | {row['layer_solver']} "
            f"| {cell(row, 'exact')} | {cell(row, 'local')} | {cell(row, 'gco_swap')} |"
        )
    timing = report.get("layer_seconds")
    if timing:
        lines += [
            "",
            f"`PuzzleMix.mix`, batch {report['layer_batch']} of 32x32x3 images, "
            "compiled, default settings, seconds per call by block grid: "
            + ", ".join(f"{k}: {v:.3f}" for k, v in timing.items())
            + ".",
        ]
    lines += [
        "",
        f"Machine: {report['machine']}; backend {report['backend']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="8 cases, smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "puzzle_energy.json")
    args = parser.parse_args(argv)
    cases = 8 if args.quick else args.cases
    rows = []
    for family in ("puzzlemix", "random"):
        for side in GRIDS:
            for n_labels in LABELS:
                seed = args.seed * 1000 + side * 10 + n_labels
                row = run_case(family, side, n_labels, cases, seed)
                rows.append(row)
                print(
                    family,
                    f"{side}x{side}",
                    n_labels,
                    {k: round(v["max_gap"], 6) for k, v in row["solvers"].items()},
                    flush=True,
                )
    batch = 16 if args.quick else 128
    report = {
        "cases": cases,
        "layer_batch": batch,
        "layer_seconds": layer_timing(batch, rounds=2 if args.quick else 5),
        "backend": keras.backend.backend(),
        "gco": _gco_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "rows": rows,
    }
    print(write_report(report, args.output, _markdown))


if __name__ == "__main__":
    main()
