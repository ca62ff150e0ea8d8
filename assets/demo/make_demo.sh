#!/usr/bin/env bash
# Regenerates the bundled demos with lstmviz's own CLI: the checkpoint assets/demo/parens-lstm.pt, a
# 2-layer LSTM (2 x 128, the engine's defaults) trained on LSTMVis's nesting language `parens`, and the
# recording assets/demo/parens-lstm.h5 over the first items of the test split (float16 keeps the file
# under 20 MB). The checkpoint stays beside the recording so the Perturb panel and `lstmviz perturb`
# can re-run the model (they find it there by name and check its sha256 against the recording's).
# Takes a few minutes on 2 CPU cores. The training seed is fixed; float results can still differ
# in the last bits between machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lstmviz train lstm --dataset parens --seed 0 --out "$here/parens-lstm.pt"
lstmviz record "$here/parens-lstm.pt" --dataset parens --split test --max-items 26 --dtype float16 \
    --out "$here/parens-lstm.h5"
lstmviz info "$here/parens-lstm.h5"

# The graph demo: ChebNet (Defferrard et al. 2016; 2 layers of 16, K = 3) on Zachary's karate club,
# node classification of the two factions from two labelled nodes per class, with the graph's first
# spectral coordinates as node features (networkx's bundled graph; seconds to make).
lstmviz train chebnet --dataset karate --dataset-option features=spectral --seed 0 --steps 200 \
    --out "$here/karate-chebnet.pt"
lstmviz record "$here/karate-chebnet.pt" --out "$here/karate-chebnet.h5"
lstmviz info "$here/karate-chebnet.h5"

# The image demo: the baseline CNN (4 conv blocks of 16-32-64-64 channels, 2x2 max pools after the first
# two) on scikit-learn's 8x8 digits (needs the `vision` or `test` extra to make, not to open), recorded
# over the 360 test digits in float16: every conv map on its own image axis, the input as tap `input`.
lstmviz train cnn --dataset digits --seed 0 --out "$here/digits-cnn.pt"
lstmviz record "$here/digits-cnn.pt" --split test --dtype float16 --out "$here/digits-cnn.h5"
lstmviz info "$here/digits-cnn.h5"
