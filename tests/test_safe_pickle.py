"""The restricted unpickler of annotation files: every attack of a crafted pickle is refused
with a clear error naming the file, and the pickles numpy and Python really write still load.

The attacks run in a child process under a memory limit (see ``pickle_attacks.load_isolated``):
on a reader that falls for them they corrupt memory or allocate gigabytes.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pickle_attacks import (
    BUILD,
    FALSE,
    NONE,
    field_outside_item_dtype,
    load_isolated,
    op_array,
    op_bytes,
    op_call,
    op_dict,
    op_dtype,
    op_get,
    op_global,
    op_int,
    op_list,
    op_put,
    op_py2_string,
    op_text,
    op_tuple,
    pickle_of,
    shared_lists,
    shared_tuple_key,
)

from handaug.data.readers import safe_load_pickle
from handaug.data.readers.safe_pickle import MAX_ARRAY_BYTES, MAX_ITEMS

GiB3 = 3 << 30
CORE = "numpy.core.multiarray"  # numpy 1's name, as RHD's pickles use it


def announce(shape: bytes = op_tuple(op_int(0)), typecode: bytes = op_bytes(b"b")) -> bytes:
    """``_reconstruct(ndarray, shape, typecode)``: numpy's first step of unpickling an array."""
    return op_call(op_global(CORE, "_reconstruct"), op_global("numpy", "ndarray"), shape, typecode)


def far_field() -> bytes:
    """The fields of a dtype: one float64 field 4,096 bytes into an 8-byte item."""
    return op_dict((op_text("x"), op_tuple(op_dtype("f8"), op_int(4096))))


#: label → (pickle body, what the error message says). Each is a complete attack on its own.
ATTACKS: dict[str, tuple[bytes, str]] = {
    # numpy.dtype with a hand-made state: the field lies 4,096 bytes past the 8-byte item.
    "field outside its item": (
        op_array((42, 3), field_outside_item_dtype(), bytes(42 * 3 * 8)),
        "dtype 'V8' is not allowed",
    ),
    "float dtype given fields": (
        op_array((2,), op_dtype("f8", names=op_tuple(op_text("x")), fields=far_field()), bytes(16)),
        "has fields or a sub-array",
    ),
    "sub-array dtype": (
        op_array((2,), op_dtype("f8", subarray=op_tuple(op_dtype("f8"), op_tuple(op_int(1 << 20)))), bytes(16)),
        "has fields or a sub-array",
    ),
    "object dtype": (op_array((2,), op_dtype("O8", "|"), bytes(16)), "dtype 'O8' is not allowed"),
    "datetime dtype": (op_array((2,), op_dtype("M8", "<"), bytes(16)), "dtype 'M8' is not allowed"),
    "string dtype": (op_array((2,), op_dtype("U4", "<"), bytes(32)), "dtype 'U4' is not allowed"),
    "unknown byte order": (op_array((2,), op_dtype("f8", "!"), bytes(16)), "unknown byte order"),
    "array with object data": (
        announce() + op_tuple(op_int(1), op_tuple(op_int(2)), op_dtype("f8"), FALSE, op_list(op_int(1), op_int(2))) + BUILD,
        "must be bytes",
    ),
    # The 62-byte pickle that asks numpy for 3 GiB through _reconstruct's shape.
    "3 GiB from a shape": (announce(op_tuple(op_int(GiB3)), op_py2_string(b"b")), "never came"),
    "shape larger than the data": (
        op_array((1 << 28, 3), op_dtype("f4"), bytes(12)),
        f"needs {GiB3} bytes, its data has 12",
    ),
    "data larger than the shape": (op_array((1,), op_dtype("f4"), bytes(8)), "needs 4 bytes, its data has 8"),
    "protocol-5 array larger than its buffer": (
        op_call(
            op_global("numpy._core.numeric", "_frombuffer"),
            op_bytes(bytes(12)), op_dtype("f4"), op_tuple(op_int(1 << 30)), op_text("C"),
        ),  # fmt: skip
        "needs 4294967296 bytes, its data has 12",
    ),
    "scalar of the wrong size": (op_call(op_global(CORE, "scalar"), op_dtype("f8"), op_bytes(bytes(3))), "needs 8 bytes, got 3"),
    "3 GiB bytearray from an integer": (op_call(op_global("builtins", "bytearray"), op_int(GiB3)), "unknown arguments"),
    "3 GiB BYTEARRAY8 in a few bytes": (b"\x96" + GiB3.to_bytes(8, "little") + b"abc", f"claims {GiB3} bytes"),
    "str() of a shared list": (shared_lists(12) + op_call(op_global("builtins", "str"), op_get(1011)), "unknown arguments"),
    # 1 KB of lists sharing their children: 8**12 floats once converted or copied.
    "billion laughs of lists": (shared_lists(12) + op_get(1011), "expands to more than"),
    "list containing itself": (b"]" + op_put(0) + op_get(0) + b"a", "contains itself"),
    "nested too deeply": (b"](" * 40 + b"e" * 40, "nested more than"),
    "BUILD on a list": (b"]" + op_dict() + BUILD, "sets the state of a list"),
    "instance of a class": (op_global("builtins", "list") + op_tuple() + b"\x81", "class instances"),
    "a global that runs code": (op_call(op_global("os", "system"), op_text("true")), "refusing to load os.system"),
    # Hashing a dict key made of 2**60 shared pairs never ends.
    "hash bomb": (shared_tuple_key(60), "more than 64 values"),
}


def test_crafted_pickles_are_refused_naming_the_file_and_the_rule(tmp_path):
    cases = []
    for number, (label, (body, _)) in enumerate(ATTACKS.items()):
        path = tmp_path / f"attack{number}.pickle"
        path.write_bytes(pickle_of(body))
        cases.append((label, "pickle", path))
    # An out-of-range memo index: the C unpickler allocates a memo of 2**31 slots for it.
    (tmp_path / "memo.pickle").write_bytes(pickle_of(NONE + op_put(0x7FFFFFF0)))
    cases.append(("memo index of 2**31", "pickle", tmp_path / "memo.pickle"))
    results = load_isolated(cases)
    failures = []
    for number, (label, (_, expected)) in enumerate(ATTACKS.items()):
        result = results[label]
        path = str(tmp_path / f"attack{number}.pickle")
        if result.get("error") != "UnpicklingError" or expected not in result["message"] or path not in result["message"]:
            failures.append(f"{label}: {result}")
    if results["memo index of 2**31"] != {"label": "memo index of 2**31", "loaded": "None"}:
        failures.append(f"memo index of 2**31: {results['memo index of 2**31']}")
    assert not failures, "\n".join(failures)


def test_size_limits_leave_room_for_the_largest_rhd_file():
    # RHD's training annotations: 41,258 samples of 42×3 + 42×3 + 3×3 float32 (or float64) values.
    assert MAX_ARRAY_BYTES >= 41258 * (42 * 3 * 2 + 9) * 8
    assert MAX_ITEMS >= 41258 * (42 * 3 * 2 + 9)  # even as nested lists of floats


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_what_numpy_and_python_write_still_loads(tmp_path, protocol):
    value = {
        0: {"xyz": np.arange(126, dtype=np.float32).reshape(42, 3), "K": np.asfortranarray(np.arange(9.0).reshape(3, 3))},
        "big-endian": np.arange(4, dtype=">i4"),
        "every type": [np.ones(2, dtype=t) for t in ("?", "i1", "u2", "i4", "u8", "f2", "f4", ">f8")],
        "empty": np.zeros((0, 3), np.float64),
        "scalars": (np.float64(2.5), np.int64(-3), np.bool_(True), np.float32(0.25)),
        "0-d": np.array(7, np.int16),
        "builtins": [1, 2.5, 1 + 2j, "text", b"bytes", b"", bytearray(b"ab"), None, True, {3, (4, 5)}, frozenset({6})],
    }
    path = tmp_path / "p.pickle"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = safe_load_pickle(path)
    assert loaded[0]["xyz"].dtype == np.float32 and np.array_equal(loaded[0]["xyz"], value[0]["xyz"])
    assert loaded[0]["K"].flags.f_contiguous and np.array_equal(loaded[0]["K"], value[0]["K"])
    assert loaded[0]["xyz"].flags.writeable and loaded[0]["K"].flags.writeable
    assert loaded["big-endian"].dtype.kind == "i" and loaded["big-endian"].tolist() == [0, 1, 2, 3]
    assert [a.dtype for a in loaded["every type"]] == [a.dtype for a in value["every type"]]
    assert loaded["empty"].shape == (0, 3) and loaded["0-d"].shape == () and loaded["0-d"] == 7
    assert loaded["scalars"] == value["scalars"] and type(loaded["scalars"][1]) is np.int64
    assert loaded["builtins"] == value["builtins"]


def test_a_python_2_rhd_pickle_loads(tmp_path):
    # As Python 2's cPickle wrote RHD: numpy.core names, __builtin__, byte strings as BINSTRING.
    xyz = np.arange(126, dtype="<f4").reshape(42, 3)
    dtype = op_call(op_global("numpy", "dtype"), op_py2_string(b"f4"), op_int(0), op_int(1))
    dtype += op_tuple(op_int(3), op_py2_string(b"<"), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(0)) + BUILD
    array = announce(typecode=op_py2_string(b"b"))
    array += op_tuple(op_int(1), op_tuple(op_int(42), op_int(3)), dtype + op_put(1), FALSE, op_py2_string(xyz.tobytes())) + BUILD
    flag = op_call(op_global(CORE, "scalar"), op_get(1), op_py2_string(np.float32(1.5).tobytes()))
    members = op_call(op_global("__builtin__", "set"), op_list(op_int(1)))
    entry = op_dict((op_py2_string(b"xyz"), array), (op_py2_string(b"flag"), flag), (op_py2_string(b"set"), members))
    body = op_dict((op_int(0), entry))
    path = tmp_path / "py2.pickle"
    path.write_bytes(pickle_of(body))
    loaded = safe_load_pickle(path)
    assert np.array_equal(loaded[0]["xyz"], xyz) and loaded[0]["flag"] == np.float32(1.5) and loaded[0]["set"] == {1}


def test_a_truncated_or_garbage_file_is_an_unpickling_error_naming_it(tmp_path):
    good = pickle.dumps({0: np.zeros((42, 3))}, protocol=2)
    for name, data in {"truncated.pickle": good[: len(good) // 2], "garbage.pickle": b"\x00not a pickle"}.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(pickle.UnpicklingError, match=name):
            safe_load_pickle(path)


def test_the_hand_written_pickles_are_what_numpy_reads():
    # The opcodes are numpy's own: the plain unpickler builds the same array ...
    ours = pickle_of(op_array((2,), op_dtype("f4"), np.arange(2, dtype="<f4").tobytes()))
    assert pickle.loads(ours).tolist() == [0.0, 1.0]
    # ... and the attack's dtype really puts its field 4,096 bytes past an 8-byte item (building
    # the dtype touches no memory; only arrays of it do).
    evil = pickle.loads(pickle_of(field_outside_item_dtype()))
    assert evil.itemsize == 8 and evil.fields["x"][1] == 4096
