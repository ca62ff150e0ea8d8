#!/usr/bin/env bash
# Regenerates the bundled demo recording assets/demo/parens-lstm.h5 with lstmviz's own CLI:
# a 2-layer LSTM (2 x 128, the engine's defaults) trained on LSTMVis's nesting language `parens`,
# then recorded over the first items of the test split (float16 keeps the file under 20 MB).
# Takes a few minutes on 2 CPU cores. The training seed is fixed; float results can still differ
# in the last bits between machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${TMPDIR:-/tmp}/lstmviz-demo"
mkdir -p "$work"
lstmviz train lstm --dataset parens --seed 0 --out "$work/parens-lstm.pt"
lstmviz record "$work/parens-lstm.pt" --dataset parens --split test --max-items 26 --dtype float16 \
    --out "$here/parens-lstm.h5"
lstmviz info "$here/parens-lstm.h5"
