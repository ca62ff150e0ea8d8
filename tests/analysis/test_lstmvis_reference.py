"""LSTMVis's precise matcher, re-implemented (lstmviz.analysis.lstmvis_reference)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lstmviz.analysis.lstmvis_reference import lstmvis_precise

ON, OFF = 1.0, -1.0  # raw values: tanh(1.0) = 0.76 >= 0.3, tanh(-1.0) < 0.3


def planted():
    """The check of lstmvis.md §3.3: 3 selected cells; runs with all 3 on (two lengths), all 3 plus 2
    extra cells on, and only 2 of the 3 on, each preceded by an off position."""
    n, d = 60, 8
    x = np.full((n, d), OFF, np.float32)
    x[5:11, :3] = ON  # A: all 3, length 6
    x[15:19, :3] = ON  # B: all 3, length 4
    x[25:30, :5] = ON  # C: all 3 and cells 3, 4, length 5
    x[35:40, :2] = ON  # D: 2 of the 3, length 5
    return x


def test_planted_ranking():
    res = lstmvis_precise(planted(), [0, 1, 2], 0.3, constrain_left=True)
    got = [(r["pos"], r["length"], r["intersection"], r["union"], r["missing"]) for r in res]
    assert got == [(5, 6, 3, 3, 0), (15, 4, 3, 3, 0), (25, 5, 3, 5, 0), (35, 5, 2, 3, 1)]
    assert [r["jaccard"] for r in res] == [1.0, 1.0, 0.6, 2 / 3]
    assert lstmvis_precise(planted(), [0, 1, 2], 0.3, no_of_results=2) == res[:2]


def test_constraints_check_the_boundary_rows():
    x = planted()
    x[4, 0] = ON  # cell 0 is already on before run A
    left = lstmvis_precise(x, [0, 1, 2], 0.3, constrain_left=True)
    a = next(r for r in left if r["length"] == 7)  # the level-1 run [4, 11): only cell 0 is on at 4
    assert a["pos"] == 4
    # the level-3 run [5, 11) is still a candidate: cell 0 is on at its left boundary -> not active
    run = next(r for r in left if r["pos"] == 5)
    assert (run["intersection"], run["union"]) == (2, 3)
    free = lstmvis_precise(x, [0, 1, 2], 0.3)
    assert [(r["intersection"], r["union"]) for r in free if r["pos"] == 5] == [(3, 3)]
    # right constraint: cells 3, 4 stay on one position after run C -> not active with constrain_right
    x[30, 3:5] = ON
    right = lstmvis_precise(x, [0, 1, 2], 0.3, constrain_right=True)
    assert [(r["intersection"], r["union"]) for r in right if r["pos"] == 25] == [(3, 3)]


def test_runs_at_the_stream_ends_are_skipped_and_do_not_fail():
    x = np.full((20, 4), OFF, np.float32)
    x[0:5, :2] = ON  # starts at position 0: theirs skips pos < 1
    x[16:20, :2] = ON  # ends at N: theirs skips pos + length + 1 > N (and raised IndexError on the right)
    x[8:11, :2] = ON
    for left, right in [(False, False), (True, False), (False, True), (True, True)]:
        res = lstmvis_precise(x, [0, 1], 0.3, constrain_left=left, constrain_right=right)
        assert [(r["pos"], r["length"]) for r in res] == [(8, 3)]


def test_single_tokens_never_match_unless_phrase_length_asks():
    x = np.full((30, 3), OFF, np.float32)
    x[5, :2] = ON
    x[10:12, :2] = ON
    x[20:23, :2] = ON
    assert [r["pos"] for r in lstmvis_precise(x, [0, 1], 0.3)] == [20, 10]
    assert [r["pos"] for r in lstmvis_precise(x, [0, 1], 0.3, phrase_length=1)] == [5]
    assert [r["pos"] for r in lstmvis_precise(x, [0, 1], 0.3, phrase_length=2)] == [10]


def test_threshold_is_taken_in_tanh_space():
    x = np.full((12, 2), OFF, np.float64)
    t = np.arctanh(0.5)
    x[3:6, 0] = t  # exactly at the threshold: on
    x[3:6, 1] = np.nextafter(t, -np.inf)  # just below: off
    res = lstmvis_precise(x, [0, 1], 0.5)
    assert [(r["pos"], r["length"], r["intersection"]) for r in res] == [(3, 3, 1)]
    with pytest.raises(ValueError):
        lstmvis_precise(x, [0], 1.0)
    with pytest.raises(ValueError):
        lstmvis_precise(x, [0, 0], 0.3)


def brute_strict_levels(x, cells, theta):
    """Per candidate (length >= 2): the strictest level m at which it is a maximal run of c >= m."""
    c = (x[:, cells] >= np.arctanh(theta)).sum(axis=1)
    found = {}
    for m in range(len(cells), 0, -1):
        t = 0
        while t < len(c):
            if c[t] >= m:
                s = t
                while t < len(c) and c[t] >= m:
                    t += 1
                if t - s >= 2:
                    found.setdefault((s, t - s), m)
            else:
                t += 1
    return found


def test_random_data_from_an_hdf5_dataset(tmp_path):
    rng = np.random.default_rng(2)
    n, d = 800, 12
    x = (rng.normal(0, 1, (n, d)) + np.repeat(rng.normal(0, 1, (n // 4, d)), 4, axis=0)).astype(np.float16)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("states", data=x, chunks=(64, d))
    cells = [9, 2, 4, 7]
    with h5py.File(tmp_path / "s.h5", "r") as f:
        from_file = lstmvis_precise(f["states"], cells, 0.3, constrain_left=True, constrain_right=True,
                                    no_of_results=10**6)
    from_array = lstmvis_precise(x, cells, 0.3, constrain_left=True, constrain_right=True, no_of_results=10**6)
    assert from_file == from_array
    # every candidate of every level is scored (no cap reached), edges excepted
    want = {key for key in brute_strict_levels(x.astype(np.float64), cells, 0.3)
            if key[0] >= 1 and key[0] + key[1] + 1 <= n}
    assert {(r["pos"], r["length"]) for r in from_file} == want
    keys = [(-r["intersection"], r["union"], -r["length"]) for r in from_file]
    assert keys == sorted(keys)
    # their set order only reorders ties: the keys and the ranked multiset stay
    as_set = lstmvis_precise(x, cells, 0.3, constrain_left=True, constrain_right=True, no_of_results=10**6,
                             candidate_order="set")
    assert sorted(map(str, as_set)) == sorted(map(str, from_array))
    assert [(-r["intersection"], r["union"], -r["length"]) for r in as_set] == keys


def test_candidate_cap_keeps_the_sharpest_boundaries():
    x = np.full((200, 3), OFF, np.float32)
    # 10 runs of all 3 cells; before runs 0-4 one cell is on (score2 = 3 - 1), before runs 5-9 none (3 - 0)
    for i in range(10):
        s = 10 + 18 * i
        x[s:s + 3, :] = ON
        if i < 5:
            x[s - 1, 0] = ON
    res = lstmvis_precise(x, [0, 1, 2], 0.3, constrain_left=True, candidate_cap=5)
    assert sorted(r["pos"] for r in res) == [10 + 18 * i for i in range(5, 10)]
