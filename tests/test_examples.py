"""The examples run as a user runs them (a quick smoke run: short chains)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_real_networks_example_runs():
    script = ROOT / "examples" / "networks" / "real_networks.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("digits MLP, all parameters:")
    assert "theory: 45/2" in lines[1]
    assert lines[2].startswith("transformer on token ids")


def test_the_text_scan_example_lists_every_reader_with_its_certified_drop(tmp_path):
    """A smoke run (a few training steps on a little text): each model's five readers, the
    LayerNorm model's exact drops (outputs / 2 for a reader with a bias, (K - 1) / 2 for the
    unembedding) against none for RMSNorm's sphere."""
    script = ROOT / "examples" / "scan" / "scan_text.py"
    done = subprocess.run(
        [sys.executable, str(script), "--steps", "3", "--chars", "20000", "--out", str(tmp_path),
         "--no-measure"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    drops = done.stdout.split("(LayerNorm | RMSNorm):")[1].strip().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in drops] == ["96 | 0", "128 | 0"] * 2 + ["48 | 0"]
    for kind in ("layernorm", "rmsnorm"):
        assert (tmp_path / f"text-{kind}" / "scan.md").is_file()
