"""Devices, dtypes and random streams, resolved once at each entry point.

Every run draws its randomness from explicit ``torch.Generator`` objects seeded from one integer
through :class:`numpy.random.SeedSequence`, never from global state.

>>> resolve_device("cpu")
device(type='cpu')
>>> a, b = split_seed(0, 2)
>>> bool(a.generate_state(1)[0] != b.generate_state(1)[0])
True
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from llcgeo.config import check_device
from llcgeo.errors import SpecError
from llcgeo.validate import integer

SMALL_PROBLEM = 1 << 16  # chains x parameters below which a CPU run uses one thread
SMALL_OPERATION = 1 << 22  # entries of the largest tensor a batched matmul step touches
# appended, never reordered: a stream's seed is its index among the spawned children
STREAMS = ("data", "teacher", "noise", "sgld", "batches")
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when a GPU is present, else CPU; ``"cuda"`` without one is an error."""
    name = check_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(
            f"device {name!r} was asked for, but torch sees no CUDA GPU; use 'cpu' or 'auto'"
        )
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype of an :class:`~llcgeo.numerics.config.SGLDConfig` dtype name."""
    if name not in _DTYPES:
        raise SpecError(f"dtype must be one of {tuple(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def check_seed(seed) -> int:
    """A validated non-negative integer seed."""
    return integer(seed, "seed", 0)


def check_draws(seed, dtype: str) -> None:
    """A spec's ``seed`` and ``dtype`` name checked where the spec is made, before anything is
    drawn (a :class:`~llcgeo.errors.SpecError` names the bad one)."""
    check_seed(seed)
    resolve_dtype(dtype)


def split_seed(seed: int, streams: int) -> list[np.random.SeedSequence]:
    """``streams`` independent seed sequences spawned from one integer seed."""
    return np.random.SeedSequence(check_seed(seed)).spawn(streams)


def make_generator(seq: np.random.SeedSequence, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with 63 bits of ``seq``."""
    state = int(seq.generate_state(1, dtype=np.uint64)[0]) >> 1
    return torch.Generator(device=device).manual_seed(state)


def generators(seed: int, count: int, device: torch.device) -> list[torch.Generator]:
    """``count`` independent generators on ``device``, from the streams :func:`split_seed`
    spawns from ``seed`` (the first is the same whatever ``count`` is)."""
    return [make_generator(seq, device) for seq in split_seed(seed, count)]


def stream(seed: int, name: str) -> np.random.SeedSequence:
    """The independent stream ``name`` (one of ``STREAMS``) of a run's ``seed``."""
    return split_seed(seed, len(STREAMS))[STREAMS.index(name)]


def use_threads(threads: int) -> None:
    """Give torch ``threads`` intra-op threads in this process (a sweep worker's share of the
    cores); :func:`thread_policy` narrows that further for small problems."""
    torch.set_num_threads(max(1, int(threads)))


@contextmanager
def thread_policy(entries: int, device: torch.device, small: int = SMALL_PROBLEM):
    """One intra-op thread while a small problem (``entries < small``) runs on the CPU;
    torch's setting is restored afterwards. SGLD passes ``chains x parameters`` against
    ``SMALL_PROBLEM``; the norm-suite measurements pass the entries of the largest tensor one of
    their batched operations touches against ``SMALL_OPERATION``.

    Every operation of a small run is tiny: splitting it across threads costs more in
    synchronisation than it saves, and on a loaded machine a descheduled worker thread can make
    a two-thread operation a hundred times slower than a one-thread one.
    """
    threads = torch.get_num_threads()
    narrow = device.type == "cpu" and entries < small and threads > 1
    if narrow:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if narrow:
            torch.set_num_threads(threads)


@contextmanager
def small_operation(device: str | torch.device, entries: int):
    """The resolved ``device``, with :func:`thread_policy` held against ``SMALL_OPERATION``
    while the block runs: a batched measurement whose largest tensor has ``entries`` entries."""
    target = resolve_device(device)
    with thread_policy(entries, target, SMALL_OPERATION):
        yield target
