"""Files from strangers, attacked: each crafted file is built from a genuine torch.export
archive the way an attacker would, its payload a harmless ``mkdir`` in ``tmp_path``; the loader
must refuse it naming the member, and the directory must not exist afterwards. A sanity check
hands the same files to torch unchecked and sees the payload run, so that no test here passes
for want of a working attack."""

import io
import json
import operator
import os
import pickle
import struct
import warnings
import zipfile
from contextlib import suppress

import numpy as np
import pytest
import torch
from torch import nn

from llcgeo import cli
from llcgeo.errors import ScanError
from llcgeo.scanner import files
from llcgeo.scanner.trace import export

ROOT = "archive"  # the root folder torch.export.save gives an archive written to a buffer


class _Mkdir:
    """Unpickles by making a directory: a payload that harms nothing and leaves a trace."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


class _MkdirThen:
    """Unpickles to ``value`` after making the directory, so that nothing shows code ran."""

    def __init__(self, path, value):
        self.path, self.value = path, value

    def __reduce__(self):
        return operator.getitem, ((_Mkdir(self.path), self.value), 1)


class _Network(nn.Module):
    """LayerNorm, Linear, a registered mask and a constant tensor (a lifted constant)."""

    def __init__(self):
        super().__init__()
        self.norm, self.lin = nn.LayerNorm(4), nn.Linear(4, 4)
        self.register_buffer("mask", torch.tril(torch.ones(4, 4)))
        self.shift = torch.tensor([1.0, 2.0, 3.0, 4.0])

    def forward(self, x):
        return self.lin(self.norm(x)) @ self.mask + self.shift


class _Branching(nn.Module):
    """Branches on the batch size, so its program carries guards."""

    def __init__(self):
        super().__init__()
        self.norm, self.lin = nn.LayerNorm(4), nn.Linear(4, 3)

    def forward(self, x):
        h = self.lin(self.norm(x))
        return h * 2 if x.shape[0] > 3 else h


def _saved(program) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _torch_saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def genuine():
    """The attacker's starting point: a genuine program, its archive and one input."""
    torch.manual_seed(0)
    model = _Network().eval()
    x = torch.randn(5, 4)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    return model, program, _saved(program), x


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zipped(members, compress=zipfile.ZIP_STORED) -> bytes:
    """A zip of ``(name, bytes)`` pairs, in order, duplicates kept."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compress) as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": meant
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


def _rewritten(data: bytes, replace=None, add=()) -> bytes:
    """The archive member by member, some replaced (``None``: dropped), some added."""
    replace = replace or {}
    kept = [(n, replace.get(n, d)) for n, d in _members(data).items()]
    return _zipped([(n, d) for n, d in kept if d is not None] + list(add))


def _config(data: bytes, folder: str) -> dict:
    return json.loads(_members(data)[f"{ROOT}/data/{folder}/model_{folder}_config.json"])


def _with_entry(data, folder, key, **changes) -> dict:
    config = _config(data, folder)
    config["config"][key] = {**config["config"].get(key, {}), **changes}
    return {f"{ROOT}/data/{folder}/model_{folder}_config.json": json.dumps(config).encode()}


def _with_model_json(data, change) -> dict:
    program = json.loads(_members(data)[f"{ROOT}/models/model.json"])
    change(program)
    return {f"{ROOT}/models/model.json": json.dumps(program).encode()}


# --- the crafted .pt2 files: (data, payload) -> (bytes, the member a refusal names) -----------


def _sample_inputs(genuine, payload):
    _, program, data, _ = genuine
    member = f"{ROOT}/data/sample_inputs/model.pt"
    evil = _torch_saved(_MkdirThen(payload, program.example_inputs))
    return _rewritten(data, {member: evil}), member


def _use_pickle_weight(genuine, payload):
    _, program, data, _ = genuine
    entry = _config(data, "weights")["config"]["lin.weight"]
    evil = _torch_saved(_MkdirThen(payload, program.state_dict["lin.weight"]))
    changes = _with_entry(data, "weights", "lin.weight", use_pickle=True)
    changes[f"{ROOT}/data/weights/{entry['path_name']}"] = evil
    return _rewritten(data, changes), f"{ROOT}/data/weights/model_weights_config.json"


def _legacy_weights(genuine, payload):
    _, program, data, _ = genuine
    member = f"{ROOT}/data/weights/model.pt"
    evil = _torch_saved(_MkdirThen(payload, dict(program.state_dict)))
    return _rewritten(data, add=[(member, evil)]), member


def _legacy_constants(genuine, payload):
    _, program, data, _ = genuine
    member = f"{ROOT}/data/constants/model.pt"
    evil = _torch_saved(_MkdirThen(payload, dict(program.constants)))
    return _rewritten(data, add=[(member, evil)]), member


def _object_constant(prefix):
    def craft(genuine, payload):
        data = genuine[2]
        member = f"{ROOT}/data/constants/{prefix}0"
        changes = _with_entry(data, "constants", "evil", path_name=f"{prefix}0",
                              is_param=False, use_pickle=True, tensor_meta=None)  # fmt: skip
        return _rewritten(data, changes, add=[(member, pickle.dumps(_Mkdir(payload)))]), member

    return craft


def _object_constant_config_only(genuine, payload):
    data = genuine[2]
    changes = _with_entry(data, "constants", "evil", path_name="opaque_obj_0",
                          is_param=False, use_pickle=False, tensor_meta={})  # fmt: skip
    return _rewritten(data, changes), f"{ROOT}/data/constants/model_constants_config.json"


def _use_pickle_constant(genuine, payload):
    _, program, data, _ = genuine
    ((key, tensor),) = program.constants.items()
    path = _config(data, "constants")["config"][key]["path_name"]
    changes = _with_entry(data, "constants", key, use_pickle=True)
    changes[f"{ROOT}/data/constants/{path}"] = _torch_saved(_MkdirThen(payload, tensor))
    return _rewritten(data, changes), f"{ROOT}/data/constants/model_constants_config.json"


def _old_layout(genuine, payload):
    from torch._export.serde.schema import SCHEMA_VERSION

    _, program, data, _ = genuine
    members = _members(data)
    old = [
        ("version", ".".join(map(str, SCHEMA_VERSION)).encode()),
        ("serialized_exported_program.json", members[f"{ROOT}/models/model.json"]),
        ("serialized_state_dict.pt", _torch_saved(_MkdirThen(payload, dict(program.state_dict)))),
        ("serialized_constants.pt", _torch_saved(dict(program.constants))),
        ("serialized_example_inputs.pt", members[f"{ROOT}/data/sample_inputs/model.pt"]),
    ]
    return _zipped(old), "version"


def _evaluated_shape(genuine, payload):
    def change(program):
        sizes = program["graph_module"]["graph"]["tensor_values"]["x"]["sizes"]
        text = sizes[0]["as_expr"]["expr_str"]
        sizes[0]["as_expr"]["expr_str"] = f"(__import__('os').mkdir({str(payload)!r}) or {text})"

    return _rewritten(genuine[2], _with_model_json(genuine[2], change)), f"{ROOT}/models/model.json"


def _guard_code(genuine, payload):
    def change(program):
        program["guards_code"] = [f"__import__('os').mkdir({str(payload)!r}) is None"]

    return _rewritten(genuine[2], _with_model_json(genuine[2], change)), f"{ROOT}/models/model.json"


def _duplicate(genuine, payload):
    _, program, data, _ = genuine
    member = f"{ROOT}/data/sample_inputs/model.pt"
    evil = _torch_saved(_MkdirThen(payload, program.example_inputs))
    return _rewritten(data, add=[(member, evil)]), member


def _duplicate_but_for_case(genuine, payload):
    member, evil = f"{ROOT}/data/sample_inputs/MODEL.pt", pickle.dumps(_Mkdir(payload))
    return _rewritten(genuine[2], add=[(member, evil)]), member


def _second_root(genuine, payload):
    member = "other/data/sample_inputs/model.pt"
    evil = _torch_saved(_MkdirThen(payload, genuine[1].example_inputs))
    return _rewritten(genuine[2], add=[(member, evil)]), member


def _aoti(genuine, payload):
    member = f"{ROOT}/data/aotinductor/model/model.so"
    return _rewritten(genuine[2], add=[(member, b"\x7fELF not really")]), member


def _extra(genuine, payload):
    member = f"{ROOT}/extra/module_info.json"
    return _rewritten(genuine[2], add=[(member, b"{}")]), member


def _sample_inputs_not_torch_save(genuine, payload):
    member = f"{ROOT}/data/sample_inputs/model.pt"
    return _rewritten(genuine[2], {member: pickle.dumps(_Mkdir(payload))}), member


def _sample_inputs_with_foreign_member(genuine, payload):
    member = f"{ROOT}/data/sample_inputs/model.pt"
    inner = _members(genuine[2])[member]
    evil = _rewritten(inner, add=[("archive/constants.pkl", pickle.dumps(_Mkdir(payload)))])
    return _rewritten(genuine[2], {member: evil}), member


def _compressed(genuine, payload):
    members = _members(genuine[2])
    return _zipped(members.items(), zipfile.ZIP_DEFLATED), next(iter(members))


def _encrypted(genuine, payload):
    member = f"{ROOT}/models/model.json"
    return _with_flag(genuine[2], member, 0x1), member


def _with_flag(data: bytes, name: str, bit: int) -> bytes:
    """``data`` with a flag bit set on ``name``'s central directory entry."""
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    (flags,) = struct.unpack_from("<H", data, at + 8)
    return data[: at + 8] + struct.pack("<H", flags | bit) + data[at + 10 :]


# name -> (craft, whether torch itself runs the payload when handed the file unchecked)
CRAFTED = {
    "sample_inputs_fallback": (_sample_inputs, True),
    "use_pickle_weight": (_use_pickle_weight, True),
    "legacy_weights_member": (_legacy_weights, True),
    "legacy_constants_member": (_legacy_constants, True),
    "opaque_obj_constant": (_object_constant("opaque_obj_"), True),
    "custom_obj_constant": (_object_constant("custom_obj_"), False),
    "opaque_obj_config_entry": (_object_constant_config_only, False),
    "use_pickle_tensor_constant": (_use_pickle_constant, True),
    "old_layout": (_old_layout, True),
    "shape_expression_evaluated": (_evaluated_shape, True),
    "guard_run_as_python": (_guard_code, True),
    "duplicate_member": (_duplicate, False),
    "duplicate_member_but_for_case": (_duplicate_but_for_case, False),
    "second_root_folder": (_second_root, False),
    "aoti_member": (_aoti, False),
    "extra_member": (_extra, False),
    "sample_inputs_a_bare_pickle": (_sample_inputs_not_torch_save, True),
    "sample_inputs_with_a_foreign_member": (_sample_inputs_with_foreign_member, False),
    "compressed_member": (_compressed, False),
    "encrypted_member": (_encrypted, False),
}


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_crafted_program_is_refused_naming_its_member_and_its_payload_never_runs(
    name, genuine, tmp_path
):
    payload = tmp_path / "payload-ran"
    data, member = CRAFTED[name][0](genuine, payload)
    path = tmp_path / "model.pt2"
    path.write_bytes(data)
    for load in (lambda: files.load_program(path), lambda: files.program_from_bytes(data, "w")):
        with pytest.raises(ScanError) as error:
            load()
        assert member in _one_line(error)
    assert not payload.exists()


def test_an_archive_rewritten_member_by_member_but_unchanged_still_loads(genuine):
    model, _, data, x = genuine  # so that each refusal above is the attack's, not the rewrite's
    loaded = files.program_from_bytes(_rewritten(data), "rewritten.pt2").module()
    torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(n for n, (_, runs) in CRAFTED.items() if runs))
def test_the_crafted_payloads_run_when_torch_reads_the_file_unchecked(name, genuine, tmp_path):
    payload = tmp_path / "payload-ran"
    data, _ = CRAFTED[name][0](genuine, payload)
    with suppress(Exception):  # the load may fail after the payload ran; that is no defence
        torch.export.load(io.BytesIO(data)).module()(genuine[3])
    assert payload.exists()


@pytest.mark.filterwarnings("ignore")
def test_a_use_pickle_weight_that_returns_the_genuine_tensor_leaves_no_trace_in_torch(
    genuine, tmp_path
):
    model, _, _, x = genuine
    payload = tmp_path / "payload-ran"
    data, _ = _use_pickle_weight(genuine, payload)
    loaded = torch.export.load(io.BytesIO(data)).module()
    torch.testing.assert_close(loaded(x), model(x))  # the model works: only the trace shows
    assert payload.exists()


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "an empty file"),
        (pickle.dumps(_Mkdir("never-made")), "it looks like a pickle"),
        (os.urandom(256).replace(b"\x80", b"\x00"), "not a zip archive"),
        (b"junk" + b"PK\x03\x04", "not a zip archive"),
        (_zipped([]), "not a zip archive"),  # an empty zip has no local header
    ],
)
def test_a_file_that_is_no_archive_is_refused_in_one_line(data, reason, tmp_path):
    path = tmp_path / "model.pt2"
    path.write_bytes(data)
    with pytest.raises(ScanError) as error:
        files.load_program(path)
    assert reason in _one_line(error) and not (tmp_path / "never-made").exists()


def test_a_truncated_program_is_refused_as_a_damaged_archive(genuine, tmp_path):
    path = tmp_path / "model.pt2"
    path.write_bytes(genuine[2][: len(genuine[2]) // 2])
    with pytest.raises(ScanError) as error:
        files.load_program(path)
    assert "damaged or truncated zip archive" in _one_line(error)


# --- genuine programs --------------------------------------------------------------------------


class _RMS(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.norm, self.head = nn.Linear(3, 6), nn.RMSNorm(6), nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.norm(torch.relu(self.up(x))))


def _exported(kind: str):
    torch.manual_seed(1)
    x = torch.randn(6, 4)
    if kind == "mlp":
        model = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 3)).eval()
        return model, torch.export.export(model, (x,)), x
    if kind == "constant_and_buffer":
        model = _Network().eval()
        return model, torch.export.export(model, (x,)), x
    if kind == "dynamic_batch":
        model, batch = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5)).eval(), torch.export.Dim("b")
        return model, torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), x
    if kind == "guards":
        model = _Branching().eval()
        return model, torch.export.export(
            model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},)), x  # fmt: skip
    model, x = _RMS().eval(), torch.randn(6, 3)
    return model, export(model, x[:2]), x  # the scanner's own export, batch left free


GENUINE = ["mlp", "constant_and_buffer", "dynamic_batch", "guards", "scanner_rmsnorm"]


@pytest.mark.parametrize("kind", GENUINE)
def test_a_genuine_program_loads_and_computes_what_the_model_does(kind, tmp_path):
    model, program, x = _exported(kind)
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    loaded = files.load_program(path)
    torch.testing.assert_close(loaded(x), model(x))
    again = files.program_from_bytes(_saved(program), "a worker's program")
    torch.testing.assert_close(again.module()(x), model(x))


@pytest.mark.parametrize("kind", GENUINE)
def test_the_allow_list_is_exactly_what_torch_export_save_writes(kind):
    _, program, _ = _exported(kind)
    assert bool(program._guards_code) == (kind == "guards")  # genuine guards pass the checks
    names = set(_members(_saved(program)))
    weights, constants = len(program.state_dict), len(program.constants)
    expected = {
        "archive_format", "archive_version", "byteorder", ".data/version",
        ".data/serialization_id", "models/model.json", "data/sample_inputs/model.pt",
        "data/weights/model_weights_config.json", "data/constants/model_constants_config.json",
        *(f"data/weights/weight_{i}" for i in range(weights)),
        *(f"data/constants/tensor_{i}" for i in range(constants)),
    }  # fmt: skip
    assert names == {f"{ROOT}/{name}" for name in expected}
    inner = set(_members(_members(_saved(program))[f"{ROOT}/data/sample_inputs/model.pt"]))
    root = next(iter(inner)).split("/")[0]
    assert {name[len(root) + 1 :] for name in inner} - {"data/0", "data/1"} == {
        "data.pkl", ".format_version", ".storage_alignment", "byteorder", "version",
        ".data/serialization_id",
    }  # fmt: skip


def test_a_directory_named_model_pt2_is_said_to_be_one(tmp_path):
    (tmp_path / "model.pt2").mkdir()
    with pytest.raises(ScanError) as error:
        files.load_program(tmp_path / "model.pt2")
    assert "is a directory, not a file" in _one_line(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "model.pt2")
    with pytest.raises(ScanError) as error:
        files.load_program(tmp_path / "model.pt2")
    assert "not a regular file" in _one_line(error)


def test_a_file_beyond_the_size_limit_is_refused_before_it_is_read(genuine, tmp_path, monkeypatch):
    path = tmp_path / "model.pt2"
    path.write_bytes(genuine[2])
    monkeypatch.setattr(files, "MAX_MODEL_FILE_BYTES", 1000)
    with pytest.raises(ScanError) as error:
        files.load_program(path)
    assert "more than the limit" in _one_line(error)


# --- .pt data ----------------------------------------------------------------------------------


def test_genuine_pt_data_loads_with_inputs_a_dict_of_tensors(tmp_path):
    inputs, targets = {"a": torch.randn(3, 2), "b": torch.arange(3)}, torch.zeros(3)
    torch.save({"inputs": inputs, "targets": targets}, tmp_path / "data.pt")
    x, y = files.load_data(tmp_path / "data.pt")
    assert x.keys() == inputs.keys() and torch.equal(x["a"], inputs["a"])
    assert torch.equal(y, targets)


def _legacy_pt(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer, _use_new_zipfile_serialization=False)
    return buffer.getvalue()


PT_CRAFTED = {
    "a_bare_pickle": (lambda p: pickle.dumps({"inputs": _Mkdir(p)}), "not a zip archive"),
    "legacy_torch_save": (lambda p: _legacy_pt({"inputs": _Mkdir(p)}), "not a zip archive"),
    "an_object_inside": (lambda p: _torch_saved({"inputs": _Mkdir(p), "targets": 0}),
                         "refused unread"),
    "a_foreign_member": (lambda p: _rewritten(_torch_saved({"inputs": 1}),
                                              add=[("archive/constants.pkl",
                                                    pickle.dumps(_Mkdir(p)))]),
                         "archive/constants.pkl"),
    "a_sparse_tensor": (lambda p: _torch_saved({"inputs": torch.eye(3).to_sparse(),
                                                "targets": torch.zeros(3)}), "sparse_coo"),
    "no_targets": (lambda p: _torch_saved({"inputs": torch.zeros(3)}), "'targets'"),
}  # fmt: skip


def _refused_data(craft, name: str, tmp_path) -> str:
    """The one line that refuses the data file ``craft`` writes, having checked that nothing in
    it ran (its payload would make a folder)."""
    payload = tmp_path / "payload-ran"
    (tmp_path / name).write_bytes(craft(payload))
    with pytest.raises(ScanError) as error:
        files.load_data(tmp_path / name)
    assert not payload.exists()
    return _one_line(error)


@pytest.mark.parametrize("name", sorted(PT_CRAFTED))
def test_crafted_pt_data_is_refused_in_one_line_and_never_unpickled(name, tmp_path):
    craft, reason = PT_CRAFTED[name]
    assert reason in _refused_data(craft, "data.pt", tmp_path)


# --- .npz data ---------------------------------------------------------------------------------


def _npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_genuine_npz_data_loads(save, tmp_path):
    x, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 1, 0])
    save(tmp_path / "data.npz", inputs=x, targets=y)
    inputs, targets = files.load_data(tmp_path / "data.npz")
    assert np.array_equal(inputs.numpy(), x) and np.array_equal(targets.numpy(), y)


def _npz_of(**members) -> bytes:
    return _zipped([(f"{k}.npy", v) for k, v in members.items()])


def _object_array(payload):
    array = np.empty(1, dtype=object)
    array[0] = _Mkdir(payload)
    return _npy(array, allow_pickle=True)


def _genuine_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, inputs=np.zeros((50, 3)), targets=np.zeros(50))
    return buffer.getvalue()


NPZ_CRAFTED = {
    "an_object_member": (lambda p: _npz_of(inputs=_object_array(p), targets=_npy(np.zeros(1))),
                         "inputs.npy: an array of Python objects (pickled)"),
    "a_raw_pickle_member": (lambda p: _npz_of(inputs=pickle.dumps(_Mkdir(p))),
                            "inputs.npy: not a .npy array"),
    "a_bare_pickle": (lambda p: pickle.dumps(_Mkdir(p)), "it looks like a pickle"),
    "empty": (lambda p: b"", "an empty file"),
    "random_bytes": (lambda p: b"\x00" + os.urandom(300), "not a zip archive"),
    "truncated_zip": (lambda p: _genuine_npz()[:700], "damaged or truncated zip archive"),
    "truncated_member": (lambda p: _npz_of(inputs=_npy(np.zeros((50, 3)))[:-8]),
                         "inputs.npy: holds"),
    "a_string_array": (lambda p: _npz_of(inputs=_npy(np.array(["a", "b"])),
                                         targets=_npy(np.zeros(2))), "a string array"),
    "a_datetime_array": (lambda p: _npz_of(inputs=_npy(np.zeros(2, "datetime64[s]"))),
                         "inputs and targets must be numbers"),
    "a_member_not_npy": (lambda p: _zipped([("inputs.pkl", pickle.dumps(_Mkdir(p)))]),
                         "inputs.pkl"),
    "no_targets": (lambda p: _npz_of(inputs=_npy(np.zeros(2))), "'targets'"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NPZ_CRAFTED))
def test_crafted_npz_data_is_refused_in_one_line_and_never_unpickled(name, tmp_path):
    craft, reason = NPZ_CRAFTED[name]
    message = _refused_data(craft, "data.npz", tmp_path)
    assert reason in message
    assert name == "a_bare_pickle" or "pickle" not in message or "object" in message


# --- the command line --------------------------------------------------------------------------


def test_the_command_refuses_a_crafted_program_in_one_line_and_torch_says_nothing(
    genuine, tmp_path, capfd
):
    payload = tmp_path / "payload-ran"
    for name in ("use_pickle_weight", "old_layout", "shape_expression_evaluated"):
        data, member = CRAFTED[name][0](genuine, payload)
        (tmp_path / "model.pt2").write_bytes(data)
        torch.save({"inputs": genuine[3], "targets": torch.zeros(5)}, tmp_path / "data.pt")
        argv = ["scan", str(tmp_path / "model.pt2"), "--data", str(tmp_path / "data.pt"),
                "--out", str(tmp_path / "out")]  # fmt: skip
        assert cli.main(argv) == 2
        out, err = capfd.readouterr()
        assert err.count("\n") == 1 and member in err and err.startswith("llcgeo scan: error:")
        assert "Traceback" not in err and out == ""
    assert not payload.exists() and not (tmp_path / "out").exists()


def test_the_command_keeps_torch_quiet_on_a_program_that_passes_the_checks_but_not_torch(
    genuine, tmp_path, capfd
):
    # torch logs a warning with a whole traceback, tries the old layout, raises "see above"
    damaged = _with_model_json(genuine[2], lambda p: p["schema_version"].update(major=999))
    (tmp_path / "model.pt2").write_bytes(_rewritten(genuine[2], damaged))
    argv = ["scan", str(tmp_path / "model.pt2"), "--data", str(tmp_path / "data.pt"), "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "not a torch.export program (SerializeError: Serialized schema version" in err


def test_the_command_reads_a_directory_as_a_run_and_says_when_it_holds_none(tmp_path, capfd):
    (tmp_path / "model.pt2").mkdir()  # a folder, whatever its name: a training run's checkpoints
    torch.save({"inputs": torch.randn(4, 3), "targets": torch.randn(4, 2)}, tmp_path / "data.pt")
    argv = ["scan", str(tmp_path / "model.pt2"), "--data", str(tmp_path / "data.pt"), "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "model.pt2: no .pt2 checkpoints in it" in err
    assert not (tmp_path / "out").exists()
