"""The README's record-from-script example runs as printed and writes what it promises."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert len(commands) == 2
    assert commands[0].rstrip().endswith("lstmviz")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_record_from_script_example(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    assert len(code.strip().splitlines()) <= 16
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    from lstmviz.recording import open_recording

    with open_recording(tmp_path / "states.h5") as rec:
        assert rec.n_items == 3
        assert list(np_len(rec)) == [12, 30, 7]
        assert {"rnn/layer0/c", "rnn/layer1/h", "rnn/layer1/gates/f"} <= set(rec.taps)
        assert rec.vocab[7] == "w7"


def test_annotations_example_runs_as_printed(tmp_path, monkeypatch):
    """The annotations snippet, run after the record-from-script example as a reader would."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    snippet = [c for c in blocks if "lstmviz.annotate(" in c]
    assert len(snippet) == 1
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    exec(compile(snippet[0], "README.md", "exec"), namespace)
    from lstmviz.recording import open_recording

    sentences = namespace["sentences"]
    with open_recording(tmp_path / "tagged.h5") as rec:
        parity, length = rec.annotations["parity"], rec.annotations["length"]
        assert (parity.kind, parity.level, parity.labels) == ("categorical", "position", ["even", "odd"])
        assert rec.annotation("parity").tolist() == [t % 2 for s in sentences for t in s]
        assert (length.kind, length.level) == ("numeric", "item")
        assert rec.annotation("length").tolist() == [12, 30, 7]
    with open_recording(tmp_path / "states.h5") as rec:
        half = rec.annotations["half"]
        assert half.level == "position" and half.labels == ["high", "low"]
        assert [half.labels[i] for i in rec.annotation("half")] == \
            ["low" if t < 25 else "high" for s in sentences for t in s]


def np_len(rec):
    return (rec.item_range(i)[1] - rec.item_range(i)[0] for i in range(rec.n_items))


def test_probe_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The README's probe snippet, on a recording with a categorical "pos" annotation and two
    checkpoints (so its curves branch runs too)."""
    import numpy as np

    from lstmviz.recording import RecordingWriter

    readme = (ROOT / "README.md").read_text()
    code = [c for c in re.findall(r"```python\n(.*?)```", readme, re.S) if "run_probes" in c]
    assert len(code) == 1
    rng = np.random.default_rng(0)
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with RecordingWriter("states.h5", vocab=[f"w{i}" for i in range(20)]) as w:
        w.add_tap("rnn/layer0/h", 6, layer=0, signal="h")
        w.add_annotation("pos", kind="categorical", labels=["N", "V"])
        w.add_checkpoint("early", step=10)
        w.add_checkpoint("late", step=20)
        for _ in range(12):
            tags = rng.integers(0, 2, 15)
            late = rng.standard_normal((15, 6)).astype(np.float32)
            late[:, 0] += 3 * tags
            w.append_item(rng.integers(0, 20, 15), {"rnn/layer0/h": late}, {"pos": tags})
            w.append_checkpoint_item("early", {"rnn/layer0/h": rng.standard_normal((15, 6))})
    namespace = {"__name__": "readme_example"}
    exec(compile(code[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.startswith("rnn/layer0/h 0.9") or out.startswith("rnn/layer0/h 1.0")
    assert namespace["curves"].checkpoints == ["early", "late"]


def test_perturb_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The README's perturbation snippet, after the record-from-script example as a reader would run it."""
    import lstmviz

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    snippet = [c for c in blocks if "perturb_item(" in c]
    assert len(snippet) == 1
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    namespace = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    exec(compile(snippet[0], "README.md", "exec"), namespace)
    effect, ranked, model = namespace["effect"], namespace["ranked"], namespace["model"]
    assert effect.item == 1 and effect.summary()["positions_edited"] == 5
    assert effect.kl[5:10].max() > 0 and (effect.kl[:5] == 0).all()
    assert sorted(ranked.tolist()) == [0, 1, 2]
    assert namespace["logits"].shape == (1, 12, 50)
    assert "forward" not in model.rnn.__dict__  # the intervention is gone
    assert lstmviz.intervene is lstmviz.hooks.intervene and lstmviz.perturb.perturb_item is not None
