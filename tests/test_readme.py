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


def np_len(rec):
    return (rec.item_range(i)[1] - rec.item_range(i)[0] for i in range(rec.n_items))
