"""Hand-written pickles for the tests of handaug's restricted unpickler, and a sandbox to load them in.

The pickles are written opcode by opcode (protocol 2, as RHD's Python 2 files) and name only
globals the unpickler admits, so each test reproduces an attack exactly as a crafted
annotation file would carry it. :func:`load_isolated` loads files in a child process under a
memory limit: an attack that still works crashes or exhausts the child, and the test fails
instead of pytest dying.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

NONE, TRUE, FALSE, REDUCE, BUILD, POP = b"N", b"\x88", b"\x89", b"R", b"b", b"0"


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def op_text(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def op_py2_string(data: bytes) -> bytes:
    """A Python 2 ``str`` (BINSTRING): the unpickler decodes it as latin-1 text."""
    return b"T" + struct.pack("<I", len(data)) + data


def op_int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def op_float(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)


def op_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def op_list(*items: bytes) -> bytes:
    return b"](" + b"".join(items) + b"e"


def op_dict(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(key + value for key, value in pairs) + b"u"


def op_put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)


def op_get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)


def op_call(function: bytes, *args: bytes) -> bytes:
    return function + op_tuple(*args) + REDUCE


def op_bytes(data: bytes) -> bytes:
    """``bytes`` as Python 3 writes them in protocol 2: ``_codecs.encode(latin-1 text, 'latin1')``."""
    return op_call(op_global("_codecs", "encode"), op_text(data.decode("latin-1")), op_text("latin1"))


def op_dtype(
    code: str,
    order: str = "<",
    *,
    subarray: bytes = NONE,
    names: bytes = NONE,
    fields: bytes = NONE,
    elsize: int = -1,
    alignment: int = -1,
    flags: int = 0,
) -> bytes:
    """``numpy.dtype(code, False, True)`` then BUILD with a version-3 state, as numpy pickles a dtype."""
    state = op_tuple(op_int(3), op_text(order), subarray, names, fields, op_int(elsize), op_int(alignment), op_int(flags))
    return op_call(op_global("numpy", "dtype"), op_text(code), FALSE, TRUE) + state + BUILD


def op_array(shape: tuple[int, ...], dtype: bytes, data: bytes, *, fortran: bool = False) -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')`` then BUILD ``(1, shape, dtype, fortran, data)``, as numpy pickles an array."""
    reconstruct = op_global("numpy._core.multiarray", "_reconstruct")
    announce = op_call(reconstruct, op_global("numpy", "ndarray"), op_tuple(op_int(0)), op_bytes(b"b"))
    state = op_tuple(op_int(1), op_tuple(*map(op_int, shape)), dtype, TRUE if fortran else FALSE, op_bytes(data))
    return announce + state + BUILD


def pickle_of(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


# ------------------------------------------------------------------------------ the attacks


def field_outside_item_dtype() -> bytes:
    """An 8-byte void dtype whose only field lies 4,096 bytes past the item: reads and writes out of bounds."""
    fields = op_dict((op_text("x"), op_tuple(op_dtype("f8"), op_int(4096))))
    return op_dtype("V8", "|", names=op_tuple(op_text("x")), fields=fields, elsize=8, alignment=1, flags=16)


def shared_lists(levels: int, width: int = 8) -> bytes:
    """A "billion laughs": ``width ** levels`` floats from lists that share their ``width`` children.

    Leaves nothing on the stack; the value is in memo slot ``1000 + levels - 1``."""
    body = op_list(*[op_float(0.5)] * width) + op_put(1000) + POP
    for level in range(1, levels):
        body += op_list(*[op_get(1000 + level - 1)] * width) + op_put(1000 + level) + POP
    return body


def shared_tuple_key(levels: int) -> bytes:
    """``{t: 1}`` where ``t`` is a tree of ``2 ** levels`` leaves made of shared pairs: hashing it never ends."""
    body = op_tuple(op_int(0), op_int(0)) + op_put(2000) + POP
    for level in range(1, levels):
        body += op_tuple(op_get(2000 + level - 1), op_get(2000 + level - 1)) + op_put(2000 + level) + POP
    return b"}" + body + op_get(2000 + levels - 1) + op_int(1) + b"s"


# ------------------------------------------------------------------------------ the sandbox

_LOADER = r"""
import json, pickle, resource, sys
cases = json.loads(sys.argv[1])
from handaug.data.readers import RHD, safe_load_pickle

size = int([line for line in open("/proc/self/status") if line.startswith("VmSize")][0].split()[1]) * 1024
limit = size + (1 << 30)  # 1 GiB more than the interpreter with torch and numpy needs
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for label, kind, path in cases:
    print(json.dumps({"label": label, "started": True}), flush=True)
    try:
        if kind == "rhd":
            data = RHD(path)
            sample = data[0]
            value = {key: sample[key].tolist() for key in ("keypoints_2d", "keypoints_3d")}
        else:
            value = safe_load_pickle(path)
        result = {"label": label, "loaded": repr(value)[:300]}
    except BaseException as error:
        kind = "UnpicklingError" if isinstance(error, pickle.UnpicklingError) else type(error).__name__
        result = {"label": label, "error": kind, "message": str(error)}
    print(json.dumps(result), flush=True)
"""


def load_isolated(cases: list[tuple[str, str, Path]], timeout: float = 120.0) -> dict[str, dict]:
    """Load each ``(label, kind, path)`` (kind ``"pickle"``: ``safe_load_pickle(path)``; ``"rhd"``:
    ``RHD(path)[0]``) in one child process with 1 GiB of address space to spare.

    Returns per label ``{"error": type name ("UnpicklingError" for its subclasses too),
    "message": ...}``, ``{"loaded": repr}``, or, for a case the child did not finish (it crashed
    or ran out of time), ``{"died": returncode, "stderr": ...}``.
    """
    argument = json.dumps([[label, kind, str(path)] for label, kind, path in cases])
    try:
        command = [sys.executable, "-c", _LOADER, argument]
        process = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, returncode = process.stdout, process.stderr, process.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        stderr, returncode = f"timed out after {timeout} s", None
    results: dict[str, dict] = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if not record.pop("started", False):
                results[record["label"]] = record
    for label, _, _ in cases:
        results.setdefault(label, {"died": returncode, "stderr": stderr[-2000:]})
    return results
