"""The README and every page of docs/ say what is true: each code block runs as written, each
link leads somewhere, the README stays a five-minute read with CI's two commands in it, its
claim table quotes the committed example report, and docs/benchmarks.md is the generator's.

Fences: ```python blocks always run; ```bash blocks run when marked ```bash run (the rest are
install lines and commands too long for a test); ``slow`` after either marks a block that runs
only in the slow test of its page. Output and illustrations take ```text. The blocks of one page
run in order, each in a fresh interpreter (or shell), in one fresh folder that holds a link to
the repository's ``examples/``, as if run from the repository's root.
"""

import csv
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
KNOWN_FENCES = {"python", "python slow", "bash", "bash run", "bash run slow", "text", "toml"}
CI_COMMANDS = (
    "python3 -m pip install torch==2.13.0 -e . && llcgeo report",
    'python3 -m pip install torch==2.13.0 -e ".[dev,dask]" && python3 -m pytest',
)
README_LINES = 150
BLOCK_SECONDS = 600


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    fence: str
    code: str

    @property
    def runs(self) -> bool:
        return self.fence.startswith("python") or self.fence.startswith("bash run")

    @property
    def slow(self) -> bool:
        return self.fence.endswith(" slow")

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(page, text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for m in FENCE.finditer(text)]  # fmt: skip


def run_block(block: Block, folder: Path) -> None:
    """Run ``block`` in ``folder``; fail with its output when it fails."""
    if block.fence.startswith("python"):
        script = folder / f"block_{block.line}.py"
        script.write_text(block.code)
        argv = [sys.executable, script.name]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", block.code]
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=BLOCK_SECONDS)  # fmt: skip
    assert done.returncode == 0, (
        f"{block.where()} failed (exit status {done.returncode}):\n{block.code}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def run_page(page: Path, folder: Path, *, slow: bool) -> int:
    """Run the page's runnable blocks in order (the slow ones too when ``slow``)."""
    (folder / "examples").symlink_to(ROOT / "examples")
    ran = 0
    for block in blocks(page):
        if block.runs and (slow or not block.slow):
            run_block(block, folder)
            ran += 1
    return ran


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _slow_pages() -> list[Path]:
    return [p for p in PAGES if any(b.runs and b.slow for b in blocks(p))]


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_block_of_a_page_runs_in_order(page, tmp_path):
    run_page(page, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", _slow_pages(), ids=_name)
def test_every_block_of_a_page_runs_in_order_the_slow_ones_too(page, tmp_path):
    assert run_page(page, tmp_path, slow=True) > 0


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_fence_says_whether_it_runs(page):
    unknown = [f"{b.where()}: ```{b.fence}" for b in blocks(page) if b.fence not in KNOWN_FENCES]
    assert unknown == [], f"use one of {sorted(KNOWN_FENCES)}"


def test_the_blocks_are_found_and_most_of_them_run():
    found = [b for p in PAGES for b in blocks(p)]
    assert len(found) > 20 and sum(b.runs for b in found) > 15
    for page in ("method.md", "scan.md", "limits.md", "architecture.md", "benchmarks.md"):
        assert (ROOT / "docs" / page).is_file(), page


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_leads_to_a_file(page):
    text = FENCE.sub("", page.read_text())
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert missing == []


def test_the_readme_is_a_five_minute_read_with_cis_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_LINES
    code = {b.code.strip() for b in blocks(README) if b.fence == "bash"}
    assert set(CI_COMMANDS) <= code


def test_the_readmes_claim_table_quotes_the_committed_example_report():
    """Each row (claim, prediction, measurement, verdict) is a row of claims.csv as it stands:
    regenerating the example report means updating the table."""
    claims = ROOT / "reports" / "example" / "claims.csv"
    with claims.open(newline="") as f:
        committed = {(r["claim"], r["prediction"], r["measurement"], r["verdict"])
                     for r in csv.DictReader(f)}  # fmt: skip
    rows = [line for line in README.read_text().splitlines() if line.startswith("| ")]
    table = [tuple(c.strip() for c in line.strip("|").split(" | ")) for line in rows]
    quoted = [row for row in table if row[0] != "claim"]
    assert len(quoted) >= 5
    assert [row for row in quoted if row not in committed] == []


def test_the_benchmarks_page_is_the_generators():
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks\n\n*Generated by `python benchmarks/make_docs.py")
    assert "Machine: " in text and " UTC" in text
