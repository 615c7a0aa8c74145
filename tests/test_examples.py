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
