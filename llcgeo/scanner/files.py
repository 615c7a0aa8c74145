"""A model or data file from a stranger, checked byte by byte before torch or numpy reads it.

The threat. ``.pt2``, ``.pt`` and ``.npz`` are zip archives that *can* hold pickles, and the
libraries that read them fall back to unpickling on their own: ``torch.export.load`` unpickles
a weight or constant marked ``use_pickle``, an ``opaque_obj_`` or ``custom_obj_`` constant, a
legacy ``data/weights/<model>.pt`` or ``data/constants/<model>.pt``, and a whole archive in the
layout of torch < 2.8; it loads sample inputs with ``torch.load(weights_only=True)`` and, on
*any* failure, again with ``weights_only=False``; it hands shape expressions to
``sympy.sympify`` (which calls ``eval``), and ``.module()`` runs the program's guards as Python
source. Each of those runs whatever code the file's author wrote.

The rule. The file is read once into memory (a regular file, at most ``MAX_MODEL_FILE_BYTES``),
that buffer is checked, and the same bytes (never the path, which may change in between) go to
the library. A ``.pt2`` must hold exactly what ``torch.export.save`` writes: one root folder,
each member on an allow-list, each payload a raw tensor, each shape expression and guard built
from numbers, shape symbols and arithmetic alone, sample inputs that load with
``weights_only=True``. A ``.pt`` holds only ``torch.save``'s own members and is read with
``weights_only=True`` and no fallback; a ``.npz`` holds ``.npy`` arrays of numbers, their headers
read before their data. Anything else is refused, in one line naming the member and why
(:class:`~llcgeo.errors.ScanError`).

>>> load_data("missing.npz")
Traceback (most recent call last):
...
llcgeo.errors.ScanError: missing.npz: no such file
"""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import pickle
import re
import stat
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from llcgeo.errors import ScanError, in_brief
from llcgeo.limits import MAX_MODEL_FILE_BYTES

__all__ = ["load_data", "load_program", "program_from_bytes"]

# --- what torch.export.save (torch >= 2.8) and torch.save write, relative to the root folder ----

_NAME = r"[A-Za-z0-9_]+"
_PT2_MEMBER = re.compile(
    rf"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    rf"|models/{_NAME}\.json|data/sample_inputs/{_NAME}\.pt"
    rf"|data/weights/{_NAME}_weights_config\.json|data/weights/weight_[0-9]+"
    rf"|data/constants/{_NAME}_constants_config\.json|data/constants/tensor_[0-9]+"
)
_PT_MEMBER = re.compile(
    r"data\.pkl|data/[0-9]+|version|\.data/version|\.format_version|\.storage_alignment"
    r"|byteorder|\.data/serialization_id"
)
_MODEL = re.compile(rf"models/({_NAME})\.json")
# members torch would unpickle or load as native code, named for a clearer refusal
_DANGER = (
    (re.compile(r"data/(weights|constants)/[^/]*\.pt"), "a legacy pickled payload"),
    (re.compile(r"data/constants/(custom|opaque)_obj_.*"), "a pickled object"),
    (re.compile(r"(data/aotinductor|data/mtia|data/executorch|xl_model_weights)(/.*)?"),
     "compiled code or external weights, which scan never loads"),
)  # fmt: skip
_OLD_LAYOUT = ("version", "serialized_exported_program.json", "serialized_state_dict.pt")
_ENCRYPTED = 0x41  # zip flag bits: traditional and strong encryption
_NUMBERS = "biuf"  # numpy kinds of booleans, integers and floats
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}  # fmt: skip

# --- shape expressions (given to sympy.sympify) and guards (run as Python by .module()) --------

_SYMPY_TEXT = re.compile(r"[A-Za-z0-9_ ().,'=+\-]*")
_SYMPY_STRING = re.compile(r"[A-Za-z0-9_.+\-]+")  # a Symbol's name, a Float's digits
# sympy's expression classes that srepr writes, and torch's (its deserializer's own table)
_SYMPY_CALLS = frozenset({
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs",
    "floor", "ceiling", "Equality", "Unequality", "StrictLessThan", "LessThan",
    "StrictGreaterThan", "GreaterThan", "And", "Or", "Not", "Piecewise", "ExprCondPair",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity",
})  # fmt: skip
_SYMPY_NAMES = _SYMPY_CALLS | {"oo", "zoo", "nan", "true", "false"}
_SYMPY_NODES = (ast.Expression, ast.keyword, ast.UnaryOp, ast.USub, ast.Load)
_GUARD_TEXT = re.compile(r"[A-Za-z0-9_ \[\]'().,<>=!+\-*/%]*")  # no quote " or \ : see _is_guard
_GUARD_NAMES = frozenset({"L", "math", "inf", "max", "min", "abs"})
_GUARD_ATTRIBUTES = frozenset({"size", "stride", "storage_offset", "dim", "numel", "floor",
                               "ceil", "trunc", "sqrt", "isnan", "inf"})  # fmt: skip
_GUARD_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Subscript,
                ast.Load, ast.operator, ast.cmpop, ast.boolop, ast.unaryop)  # fmt: skip
_QUIET_LOGGERS = ("torch.export", "torch._export")


# --- public ------------------------------------------------------------------------------------


def load_program(path: str | os.PathLike) -> torch.nn.Module:
    """The module of the ``torch.export`` program in ``path`` (a ``.pt2`` file), checked first;
    anything else is refused unread (``ScanError``)."""
    path = Path(path)
    if path.suffix != ".pt2":
        raise ScanError(f"{path}: MODEL must be a torch.export program (.pt2); scan never "
                        "unpickles a model")  # fmt: skip
    program = program_from_bytes(_read_whole(path), str(path))
    return _quietly(program.module, str(path), "not a torch.export program")


def program_from_bytes(data: bytes, name: str) -> torch.export.ExportedProgram:
    """The ``torch.export`` program whose archive is ``data``, once every member has passed the
    checks of this module (``name`` says where it came from, in a refusal)."""
    _check_program(data, name)
    return _quietly(lambda: torch.export.load(io.BytesIO(data)), name, "not a torch.export "
                    "program")  # fmt: skip


def load_data(path: str | os.PathLike):
    """``(inputs, targets)`` from a ``.pt`` file of dense tensors (``inputs`` may be a dict of
    them) or a ``.npz`` file of numeric arrays, checked first; ``ScanError`` otherwise."""
    path = Path(path)
    if path.suffix not in (".pt", ".npz"):
        raise ScanError(f"{path}: DATA must be a .pt file of tensors or a .npz file")
    data = _read_whole(path)
    return _npz_data(data, str(path)) if path.suffix == ".npz" else _pt_data(data, str(path))


def _check_program(data: bytes, name: str) -> None:
    """``ScanError`` unless ``data`` is a ``torch.export.save`` archive that loads without
    unpickling or evaluating anything; returns silently otherwise."""
    archive = _open_zip(data, name, stored=True)
    members = _pt2_members(archive, name)
    models = [m.group(1) for m in map(_MODEL.fullmatch, members) if m]
    if "model" not in models:
        raise ScanError(f"{name}: no models/model.json, so not a torch.export program")
    for model in models:
        _check_payloads(archive, members, model, name)
        _check_sample_inputs(archive, members, model, name)
        _check_model_json(archive, members, model, name)


# --- the file ----------------------------------------------------------------------------------


def _read_whole(path: Path) -> bytes:
    """The bytes of the regular file ``path``, read once (opened without blocking, so that a
    named pipe cannot stall the scan; checked on the open file, not on a path that may change)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ScanError(f"{path}: no such file") from None
    except OSError as error:
        raise ScanError(f"{path}: cannot be opened ({in_brief(error)})") from None
    try:
        size = _regular_size(os.fstat(fd), path)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(size + 1)  # one byte more: a file that grew is seen to
    finally:
        os.close(fd)
    if len(data) > size:
        raise ScanError(f"{path}: grew while it was read; scan it once it is fully written")
    return data


def _regular_size(info: os.stat_result, path: Path) -> int:
    if stat.S_ISDIR(info.st_mode):
        raise ScanError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ScanError(f"{path}: not a regular file")
    if info.st_size > MAX_MODEL_FILE_BYTES:
        raise ScanError(f"{path}: {info.st_size} bytes, more than the limit of "
                        f"{MAX_MODEL_FILE_BYTES >> 30} GiB")  # fmt: skip
    return info.st_size


# --- the zip archive ---------------------------------------------------------------------------


def _open_zip(data: bytes, what: str, *, stored: bool) -> zipfile.ZipFile:
    """``data`` as a zip archive that Python's reader and torch's (miniz) read alike: one entry a
    name, no data before the first entry, no encryption; ``stored``: nothing compressed (as torch
    writes it), so the declared sizes are the true ones."""
    if not data:
        raise ScanError(f"{what}: an empty file")
    if not data.startswith(b"PK\x03\x04"):
        pickled = data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
        raise ScanError(f"{what}: not a zip archive" + (
            " (it looks like a pickle, which scan never loads)" if pickled else ""))  # fmt: skip
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as error:  # whatever the parser meets in a malformed archive
        raise ScanError(f"{what}: a damaged or truncated zip archive ({in_brief(error)})") from None
    _check_entries(archive.infolist(), what)
    _check_sizes(archive.infolist(), len(data), what, stored=stored)
    return archive


def _check_entries(infos: list[zipfile.ZipInfo], what: str) -> None:
    if not infos:
        raise ScanError(f"{what}: an empty zip archive")
    # torch's reader finds a member by its name ignoring case: two such names are one to it
    seen: dict[str, str] = {}
    for info in infos:
        name = info.orig_filename
        if name.lower() in seen:
            raise ScanError(f"{what}: member {name} appears twice (once as "
                            f"{seen[name.lower()]}); zip readers disagree on which copy "
                            "counts")  # fmt: skip
        seen[name.lower()] = name
        if name != info.filename or not (name.isascii() and name.isprintable()):
            raise ScanError(f"{what}: member {name!r}: a name zip readers read differently")
        if info.flag_bits & _ENCRYPTED:
            raise ScanError(f"{what}: member {name} is encrypted")
    if min(info.header_offset for info in infos) != 0:
        raise ScanError(f"{what}: data before the first member (zip readers disagree on where "
                        "members start)")  # fmt: skip


def _check_sizes(infos: list[zipfile.ZipInfo], size: int, what: str, *, stored: bool) -> None:
    for info in infos:
        if stored and (info.compress_type != zipfile.ZIP_STORED
                       or info.compress_size != info.file_size):  # fmt: skip
            raise ScanError(f"{what}: member {info.filename} is compressed, which torch never "
                            "writes")  # fmt: skip
    declared = sum(info.file_size for info in infos)
    if declared > (size if stored else MAX_MODEL_FILE_BYTES):
        raise ScanError(f"{what}: its members declare {declared} bytes, more than the file "
                        f"{'holds' if stored else 'may unpack to'}")  # fmt: skip


def _one_root(archive: zipfile.ZipFile, what: str) -> str:
    """The one folder every member is in (torch reads the first member's as the root)."""
    names = archive.namelist()
    root = names[0].split("/", 1)[0]
    outside = [name for name in names if not name.startswith(root + "/")]
    if outside or root in ("", ".", ".."):
        raise ScanError(f"{what}: member {(outside or names)[0]} is outside the archive's one "
                        f"root folder {root + '/'!r}")  # fmt: skip
    return root


def _member(archive: zipfile.ZipFile, name: str, what: str) -> bytes:
    try:
        return archive.read(name)
    except Exception as error:  # a bad checksum, a cut member, an unknown compression
        raise ScanError(f"{what}: member {name} is damaged ({in_brief(error)})") from None


# --- the .pt2 archive --------------------------------------------------------------------------


def _pt2_members(archive: zipfile.ZipFile, what: str) -> dict[str, str]:
    """Each member's name relative to the root, mapped to its full name; ``ScanError`` at the
    first that ``torch.export.save`` does not write, or for another archive format."""
    old = [name for name in _OLD_LAYOUT if name in archive.namelist()]
    if old:
        raise ScanError(f"{what}: member {old[0]}: saved by torch < 2.8 in a layout torch reads "
                        "by unpickling; re-export it with torch >= 2.8")  # fmt: skip
    root = _one_root(archive, what)
    members = {name[len(root) + 1 :]: name for name in archive.namelist()}
    for relative, name in members.items():
        if not _PT2_MEMBER.fullmatch(relative):
            raise ScanError(f"{what}: member {name}: {_why_refused(relative)}; refused unread")
    for relative, expected in (("archive_format", b"pt2"), ("archive_version", b"0")):
        if relative not in members or _member(archive, members[relative], what) != expected:
            raise ScanError(f"{what}: {root}/{relative} is not {expected.decode()!r}, so not a "
                            "torch.export archive this version of torch writes")  # fmt: skip
    return members


def _why_refused(relative: str) -> str:
    for pattern, why in _DANGER:
        if pattern.fullmatch(relative):
            return why
    return "not a member torch.export.save writes"


def _check_payloads(archive, members: dict[str, str], model: str, what: str) -> None:
    """Each weight and constant of ``model`` a raw tensor in a member of the archive."""
    for folder, prefix in (("weights", "weight_"), ("constants", "tensor_")):
        config = members.get(f"data/{folder}/{model}_{folder}_config.json")
        if config is None:
            raise ScanError(f"{what}: models/{model}.json has no {folder} config")
        entries = _json(archive, config, what).get("config")
        if not isinstance(entries, dict):
            raise ScanError(f"{what}: member {config}: no 'config' object")
        for key, entry in entries.items():
            problem = _payload_problem(entry, f"data/{folder}/", prefix, members)
            if problem:
                raise ScanError(f"{what}: member {config}: entry {key!r} {problem}")


def _payload_problem(entry, folder: str, prefix: str, members) -> str | None:
    """Why one payload entry is refused, or ``None``."""
    if not isinstance(entry, dict):
        return "is not an object"
    if entry.get("use_pickle") is not False:
        return "is pickled ('use_pickle'), which torch unpickles; refused unread"
    path = entry.get("path_name")
    if not (isinstance(path, str) and re.fullmatch(rf"{prefix}[0-9]+", path)):
        return f"names {path!r}, not a raw tensor ({prefix}<n>); refused unread"
    if not isinstance(entry.get("tensor_meta"), dict):
        return "has no tensor_meta"
    if folder + path not in members:
        return f"names {folder + path}, which the archive lacks"
    return None


def _json(archive: zipfile.ZipFile, name: str, what: str) -> dict:
    try:
        value = json.loads(_member(archive, name, what))
    except (ValueError, RecursionError) as error:
        raise ScanError(f"{what}: member {name} is not JSON ({in_brief(error)})") from None
    if not isinstance(value, dict):
        raise ScanError(f"{what}: member {name} is not a JSON object")
    return value


def _check_sample_inputs(archive, members: dict[str, str], model: str, what: str) -> None:
    """The sample inputs load with ``weights_only=True``, just as torch first tries them: torch's
    retry with ``weights_only=False`` is then never reached."""
    name = members.get(f"data/sample_inputs/{model}.pt")
    if name is None:
        raise ScanError(f"{what}: models/{model}.json has no sample inputs")
    where = f"{what}: member {name}"
    data = _member(archive, name, what)
    _check_pt_archive(data, where)
    inputs = _quietly(lambda: torch.load(io.BytesIO(data), weights_only=True), where,
                      "not sample inputs")  # fmt: skip
    if not isinstance(inputs, (tuple, dict)):
        raise ScanError(f"{where}: not a tuple or dict of sample inputs")


def _check_model_json(archive, members: dict[str, str], model: str, what: str) -> None:
    """Every shape expression and guard of the program plain arithmetic on shapes."""
    name = members[f"models/{model}.json"]
    program = _json(archive, name, what)
    for text in _values_of(program, "expr_str"):
        if not _is_sympy_expression(text):
            raise ScanError(f"{what}: member {name}: the shape expression {_shown(text)} is "
                            "not plain arithmetic on shapes (torch would evaluate it)")  # fmt: skip
    guards = program.get("guards_code", [])
    for text in guards if isinstance(guards, list) else [guards]:
        if not _is_guard(text):
            raise ScanError(f"{what}: member {name}: the guard {_shown(text)} is not a plain "
                            "comparison of shapes (torch would run it as Python)")  # fmt: skip


def _values_of(tree, key: str) -> Iterator:
    """Every value of ``key`` in a JSON tree (without recursion, whatever its depth)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                yield node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _shown(text) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _parsed(text, allowed: re.Pattern) -> ast.Expression | None:
    if not isinstance(text, str) or len(text) > 100_000 or not allowed.fullmatch(text):
        return None
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _is_sympy_expression(text) -> bool:
    """Whether sympy, reading ``text``, can only build an expression: calls of sympy's and torch's
    expression classes on numbers, with a string only as a ``Symbol``'s name or a ``Float``'s
    digits (any other function would ``sympify``, that is ``eval``, a string it is given).

    >>> _is_sympy_expression("FloorDiv(Symbol('s77', positive=True, integer=True), Integer(2))")
    True
    >>> _is_sympy_expression("Max('__import__', Integer(1))")  # Max would sympify the string
    False
    """
    tree = _parsed(text, _SYMPY_TEXT)
    if tree is None:
        return False
    named = {id(node.args[0]) for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id in ("Symbol", "Float")
             and node.args}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            number = isinstance(node.value, (int, float))  # bool is an int; no bytes, no 1j
            named_here = isinstance(node.value, str) and id(node) in named
            ok = number or (named_here and bool(_SYMPY_STRING.fullmatch(node.value)))
        elif isinstance(node, ast.Call):
            ok = isinstance(node.func, ast.Name) and all(k.arg for k in node.keywords)
        else:
            ok = isinstance(node, _SYMPY_NODES) or (
                isinstance(node, ast.Name) and node.id in _SYMPY_NAMES
            )
        if not ok:
            return False
    return True


def _is_guard(text) -> bool:
    """Whether a guard is a plain comparison of input sizes, as torch's printer writes them.
    ``.module()`` pastes each guard into Python source it runs, inside a double-quoted
    message too: no double quote or backslash may appear.

    >>> _is_guard("(L['x'].size()[0] // 2) <= L['y'].size()[0]")
    True
    >>> _is_guard("__import__('os').getcwd() is None")
    False
    """
    tree = _parsed(text, _GUARD_TEXT)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            ok = node.id in _GUARD_NAMES
        elif isinstance(node, ast.Attribute):
            ok = node.attr in _GUARD_ATTRIBUTES
        elif isinstance(node, ast.Constant):
            ok = isinstance(node.value, (int, float, str))  # a string: a key of an input
        elif isinstance(node, ast.Call):
            ok = not node.keywords
        else:
            ok = isinstance(node, _GUARD_NODES)
        if not ok:
            return False
    return True


# --- .pt and .npz data -------------------------------------------------------------------------


def _check_pt_archive(data: bytes, what: str) -> None:
    """``data`` holds only the members ``torch.save`` writes (a pickle of weights and raw
    storages); a legacy file or a bare pickle is refused unread."""
    archive = _open_zip(data, what, stored=True)
    root = _one_root(archive, what)
    for name in archive.namelist():
        if not _PT_MEMBER.fullmatch(name[len(root) + 1 :]):
            raise ScanError(f"{what}: member {name} is not one torch.save writes; refused "
                            "unread")  # fmt: skip
    if f"{root}/data.pkl" not in archive.namelist():
        raise ScanError(f"{what}: no {root}/data.pkl, so not a torch.save file")


def _pt_data(data: bytes, what: str):
    _check_pt_archive(data, what)
    loaded = _quietly(lambda: torch.load(io.BytesIO(data), weights_only=True, mmap=False,
                                            map_location="cpu"),
                      what, "cannot be read")  # fmt: skip
    if not isinstance(loaded, dict) or not {"inputs", "targets"} <= set(loaded):
        raise ScanError(f"{what}: must hold a dict with 'inputs' and 'targets'")
    for tensor in _values_of_type(loaded, torch.Tensor):
        if tensor.layout != torch.strided:
            raise ScanError(f"{what}: holds a {str(tensor.layout).removeprefix('torch.')} "
                            "tensor; inputs and targets must be dense")  # fmt: skip
    return loaded["inputs"], loaded["targets"]


def _values_of_type(tree, kind: type) -> Iterator:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _npz_data(data: bytes, what: str):
    archive = _open_zip(data, what, stored=False)
    arrays = {}
    for name in archive.namelist():
        if not name.endswith(".npy"):
            raise ScanError(f"{what}: member {name} is not a .npy array")
        arrays[name[: -len(".npy")]] = _npy(_member(archive, name, what), f"{what}: member {name}")
    if not {"inputs", "targets"} <= set(arrays):
        raise ScanError(f"{what}: must hold arrays 'inputs' and 'targets'")
    return torch.from_numpy(arrays["inputs"]), torch.from_numpy(arrays["targets"])


def _npy(data: bytes, what: str) -> np.ndarray:
    """One ``.npy`` member: its header read and checked (numbers only, a size that fits the
    bytes) before its data is read, never with pickles allowed."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version}, not 1.0 or 2.0")
        shape, _, dtype = read_header(stream)
    except (ValueError, EOFError, SyntaxError, TypeError) as error:
        raise ScanError(f"{what}: not a .npy array ({in_brief(error)})") from None
    if dtype.hasobject:
        raise ScanError(f"{what}: an array of Python objects (pickled); refused unread")
    if dtype.kind in ("S", "U"):
        raise ScanError(f"{what}: a string array: inputs and targets must be numbers")
    if dtype.kind not in _NUMBERS:
        raise ScanError(f"{what}: an array of {dtype}: inputs and targets must be numbers")
    expected = stream.tell() + dtype.itemsize * int(np.prod(shape, dtype=object))
    if len(data) != expected:
        raise ScanError(f"{what}: holds {len(data)} bytes where its header says {expected} "
                        "(truncated or padded)")  # fmt: skip
    stream.seek(0)
    return np.lib.format.read_array(stream, allow_pickle=False)


# --- torch, quietly ----------------------------------------------------------------------------


def _quietly(work, what: str, failure: str):
    """``work()`` with torch's export loggers and its loading deprecations silenced; any error
    it raises becomes one line of ``ScanError``: ``what``, then torch's refusal to unpickle an
    object in our words, or ``failure`` and the error in brief (the one torch logged, where it
    raised only a pointer to its log)."""
    held = _Held()
    try:
        with _quiet_torch(held):
            return work()
    except pickle.UnpicklingError:  # torch's message runs to many lines
        raise ScanError(f"{what}: holds objects other than tensors, refused unread (torch.load "
                        "with weights_only=True)") from None  # fmt: skip
    except Exception as error:  # a damaged or foreign file, in its own words
        raise ScanError(f"{what}: {failure} ({in_brief(held.cause or error)})") from None


class _Held(logging.Handler):
    """Keeps the records torch logs instead of printing them; ``cause``: the last error among
    them (``torch.export.load`` logs the real one and raises "check the warnings above")."""

    def __init__(self):
        super().__init__()
        self.cause: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.cause = record.exc_info[1]


@contextmanager
def _quiet_torch(held: logging.Handler) -> Iterator[None]:
    """For the block: the ``torch.export`` logger's records go to ``held`` alone (and so do its
    children's, which propagate to it), every other logger under ``torch.export`` and
    ``torch._export`` is silenced (some do not propagate), and so are torch's FutureWarning and
    UserWarning notices."""
    top = logging.getLogger("torch.export")
    known = list(logging.root.manager.loggerDict)
    names = {n for n in known for t in _QUIET_LOGGERS if n.startswith(t + ".")} | {"torch._export"}
    silenced = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in silenced], top.handlers, top.propagate
    try:
        for logger in silenced:
            logger.setLevel(logging.CRITICAL + 1)
        top.handlers, top.propagate = [held], False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for logger, level in zip(silenced, saved[0]):
            logger.setLevel(level)
        top.handlers, top.propagate = saved[1], saved[2]
