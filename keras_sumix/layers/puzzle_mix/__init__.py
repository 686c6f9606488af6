"""PuzzleMix (Kim, Choo & Song, ICML 2020): a saliency-aware block labelling,
solved on the device, and an optimal transport of blocks within each image.

The reference (github.com/snu-mllab/PuzzleMix, `mixup.py`, and OpenMixup's
port) labels each block of a random grid by a graph cut on the CPU (gco's
alpha-beta swap, one sample at a time) and transports blocks with an
iterative assignment on the GPU. Here the whole batch is labelled on the
device, with backend ops, inside a compiled step. By job:

- `layer`: the `PuzzleMix` layer and its presets;
- `layout`: the block grids drawn and the cells each pools over
  (`block_grids`, `grid_layout`);
- `energy`: the reference's energy (`graphcut_multi`, with the unary and
  pairwise terms `mixup_graph` builds); `energy_terms` builds it, `energy`
  evaluates it;
- `solvers`: `solve_exact` minimises it exactly (dynamic programming over
  the rows of the block grid: every default grid, up to 8x8 with 3 labels),
  `solve_local` by a local search of exact moves where the rows have too
  many states, `solve_labels` picks one;
- `transport`: `transport_order`, the reference's `mask_transport`
  completed into a permutation of blocks, and `move_cells`.
"""

from keras_sumix.layers.puzzle_mix.energy import (
    energy,
    energy_terms,
    mask_levels,
    prior_costs,
    smoothness_tables,
)
from keras_sumix.layers.puzzle_mix.layer import PRESETS, PuzzleMix
from keras_sumix.layers.puzzle_mix.layout import (
    GridLayout,
    block_grids,
    grid_layout,
)

# The pooling helpers the tests and benchmarks build energies with.
from keras_sumix.layers.puzzle_mix.layout import _normalised as _normalised
from keras_sumix.layers.puzzle_mix.layout import _pool as _pool
from keras_sumix.layers.puzzle_mix.solvers import (
    EXACT_STATES,
    MAX_EXACT_STATES,
    solve_exact,
    solve_labels,
    solve_local,
)
from keras_sumix.layers.puzzle_mix.transport import (
    MAX_TRANSPORT_SIDE,
    cost_matrix,
    move_cells,
    transport_order,
)

__all__ = [
    "EXACT_STATES",
    "MAX_EXACT_STATES",
    "MAX_TRANSPORT_SIDE",
    "PRESETS",
    "GridLayout",
    "PuzzleMix",
    "block_grids",
    "cost_matrix",
    "energy",
    "energy_terms",
    "grid_layout",
    "mask_levels",
    "move_cells",
    "prior_costs",
    "smoothness_tables",
    "solve_exact",
    "solve_labels",
    "solve_local",
    "transport_order",
]
