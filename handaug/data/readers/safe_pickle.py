"""Reading pickled annotation files (RHD's ``anno_*.pickle``) without trusting them.

A pickle is a small program: it can call any importable function, hand numpy a hand-made
dtype whose fields lie outside its items (reading and writing memory that is not the array's),
ask for gigabytes with a few bytes, or share one list so often that converting it explodes.
:class:`RestrictedUnpickler` runs a pickle under these rules, checked *before* numpy or Python
builds anything from the pickle's arguments:

- **Globals**: only the names pickles of numpy arrays, numpy scalars and builtin containers
  use: ``numpy[._]core.multiarray._reconstruct`` / ``.scalar``,
  ``numpy[._]core.numeric._frombuffer``, ``numpy.ndarray``, ``numpy.dtype``, ``_codecs.encode``
  and the builtins ``dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes,
  bytearray`` (``__builtin__`` in Python 2 pickles). Each stands for a checking function of
  this module, never for the real callable: numpy never receives a dtype or an array state
  from the pickle. Any other name is refused before it is imported.
- **dtypes**: :data:`NUMERIC_DTYPE_CODES` only (bool, signed and unsigned integers, 16-64 bit
  floats) with native or explicit byte order, built here from the type code. Fields,
  sub-arrays, object, void, string, datetime and any other dtype are refused.
- **Arrays**: the data's byte length must equal ``prod(shape) × itemsize``; arrays together
  hold at most :data:`MAX_ARRAY_BYTES`. Declared lengths larger than the pickle are refused
  before anything is allocated.
- **Containers**: at most :data:`MAX_ITEMS` values counting every shared reference as often as
  it is reached (what a conversion with ``np.asarray`` or a copy would allocate), nesting at
  most :data:`MAX_DEPTH` deep, no reference cycles; dict keys and set members are numbers,
  strings, bytes, ``None`` or small tuples of them (hashing a shared tuple tree takes
  exponential time).
- **Opcodes**: class instances (``INST``, ``OBJ``, ``NEWOBJ``, ``NEWOBJ_EX``), ``BUILD`` on
  anything but an array or dtype under construction, list/dict/set operations on other types,
  out-of-band buffers and persistent ids are refused.

Every refusal is an :class:`UnsafePickleError` (a :class:`pickle.UnpicklingError` and a
:class:`ValueError`) naming the file and what was refused; any other failure inside a malformed
pickle is reported as one too.

The pickle runs on Python's own pure-Python unpickler (``pickle._Unpickler``), whose opcode
table can be overridden and which never preallocates a declared length (the C unpickler
allocates a 3 GiB buffer or memo for a pickle that claims one). It reads RHD's training
annotations (41,258 samples, 67 MB) in about 4 s of CPU time.
"""

from __future__ import annotations

import io
import numbers
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from handaug.data.source_files import open_source_file

__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "NUMERIC_DTYPE_CODES",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "safe_load_pickle",
]

#: Type codes (numpy's ``kind`` + item size, as dtypes pickle them) of the dtypes arrays may have.
NUMERIC_DTYPE_CODES: frozenset[str] = frozenset(
    {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"}
)
#: Bytes all arrays of one pickle may hold, shared references counted each time (RHD's largest: 90 MB).
MAX_ARRAY_BYTES: int = 1 << 30
#: Values of one pickle, shared references counted each time they are reached (RHD: ~0.3 million).
MAX_ITEMS: int = 1 << 25
#: Nesting depth of containers (RHD: 3).
MAX_DEPTH: int = 32
#: Values in one dict key or set member (a tuple counts its elements, recursively).
MAX_KEY_ITEMS: int = 64

_TEXT_ENCODINGS: frozenset[str] = frozenset({"latin1", "latin-1", "iso-8859-1", "ascii", "utf-8", "utf8"})
_BYTE_ORDERS = ("<", ">", "=", "|")
_KEY_TYPES = (type(None), bool, int, float, complex, str, bytes, np.bool_, np.number)


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle broke a rule of :class:`RestrictedUnpickler` or is malformed; the message names the file.

    A :class:`ValueError` too, as every other bad-input error of handaug's readers."""


class _StandIn:
    """What an allowed global name stands for: a checking function of the unpickler (called by REDUCE)."""

    __slots__ = ("function", "name")

    def __init__(self, name: str, function: Callable[..., Any] | None) -> None:
        self.name, self.function = name, function

    def __repr__(self) -> str:
        return f"<allowed {self.name}>"


class _PendingDtype:
    """A dtype the pickle asked for: its type code now, its state at ``BUILD``, built by :meth:`dtype`."""

    def __init__(self, unpickler: RestrictedUnpickler, code: str) -> None:
        self._unpickler, self.code, self.byte_order, self._built = unpickler, code, "=", False
        self._dtype: np.dtype | None = None

    def __setstate__(self, state: Any) -> None:
        refuse = self._unpickler.refuse
        if self._built:
            refuse(f"the state of dtype {self.code!r} is set twice")
        self._built = True
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            refuse(f"dtype {self.code!r} has an unknown state {_short(state)}")
        byte_order, subarray, names, fields = state[1:5]
        if subarray is not None or names is not None or fields is not None:
            refuse(f"dtype {self.code!r} has fields or a sub-array: only plain numeric dtypes are read")
        if byte_order not in _BYTE_ORDERS:
            refuse(f"dtype {self.code!r} has an unknown byte order {_short(byte_order)}")
        if not all(_is_int(v) for v in state[5:8]) or (len(state) == 9 and state[8] is not None):
            refuse(f"dtype {self.code!r} has an unknown state {_short(state)}")
        self.byte_order = byte_order

    def dtype(self) -> np.dtype:
        if self._dtype is None:
            dtype = np.dtype(self.code)
            self._dtype = dtype.newbyteorder(self.byte_order) if dtype.itemsize > 1 and self.byte_order in "<>" else dtype
        return self._dtype


class _PendingArray:
    """An array ``_reconstruct`` announced; its shape, dtype and data arrive with ``BUILD``."""

    def __init__(self, unpickler: RestrictedUnpickler) -> None:
        self._unpickler, self.array = unpickler, None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            self._unpickler.refuse("the state of an array is set twice")
        if isinstance(state, tuple) and len(state) == 5 and _is_int(state[0]):
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            self._unpickler.refuse(f"an array has an unknown state {_short(state)}")
        shape, dtype, fortran, data = state
        if not _is_int(fortran):
            self._unpickler.refuse(f"an array's Fortran-order flag must be a bool, got {_short(fortran)}")
        self.array = self._unpickler.array_from_bytes(data, dtype, shape, "F" if fortran else "C")


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcode table is ours to change
    """Unpickle numpy arrays, numpy scalars and builtin containers only, under this module's rules.

    Args:
        file: a binary file object holding one pickle; it is read to its end at once.
        encoding: how Python 2 ``str`` objects are decoded (``"latin1"`` keeps their bytes).
        source: the name of the file in error messages.

    :meth:`load` returns plain Python containers holding ``numpy.ndarray`` (C- or Fortran-ordered,
    writable) and numpy scalars of :data:`NUMERIC_DTYPE_CODES`.

    Raises:
        UnsafePickleError: at :meth:`load`, whatever the pickle does outside the rules, or a
            malformed pickle; the message names ``source``.
    """

    def __init__(self, file: BinaryIO, *, encoding: str = "latin1", source: str = "pickle") -> None:
        data = file.read()
        if not isinstance(data, bytes):
            raise TypeError(f"file must be opened in binary mode, got {type(data).__name__} data")
        super().__init__(io.BytesIO(data), encoding=encoding)
        self.source = source
        self._size = len(data)
        self._array_bytes = 0

    # ------------------------------------------------------------------ errors
    def refuse(self, reason: str) -> NoReturn:
        raise UnsafePickleError(f"{self.source}: {reason}")

    def load(self) -> Any:
        try:
            return _Resolver(self).resolve(super().load())
        except UnsafePickleError:
            raise
        except Exception as error:  # a malformed pickle fails anywhere inside: say which file it was
            raise UnsafePickleError(
                f"{self.source}: not a readable pickle of numpy arrays and builtin containers "
                f"({type(error).__name__}: {error})"
            ) from error

    # ------------------------------------------------------------------ globals
    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__"):
            module = "builtins"
        elif module.startswith("numpy.core."):  # numpy 1 names; numpy 2 moved them to numpy._core
            module = "numpy._core." + module[len("numpy.core.") :]
        method = _ALLOWED_GLOBALS.get((module, name), "")
        if method == "":
            self.refuse(
                f"refusing to load {module}.{name}: this pickle reader only builds numpy arrays and builtin containers"
            )
        return _StandIn(f"{module}.{name}", getattr(self, method) if method else None)

    # ------------------------------------------------------------------ numpy stand-ins
    def _dtype(self, code: Any, align: Any = False, copy: Any = True) -> _PendingDtype:
        if not isinstance(code, str) or code not in NUMERIC_DTYPE_CODES:
            self.refuse(
                f"dtype {_short(code)} is not allowed: only bool, integer and float dtypes "
                f"({', '.join(sorted(NUMERIC_DTYPE_CODES))}) are read"
            )
        if not _is_int(align) or not _is_int(copy):
            self.refuse(f"dtype {code!r} has unknown arguments {_short((align, copy))}")
        return _PendingDtype(self, code)

    def _resolve_dtype(self, dtype: Any) -> np.dtype:
        if not isinstance(dtype, _PendingDtype):
            self.refuse(f"an array's dtype must be a numpy dtype, got {_short(dtype)}")
        return dtype.dtype()

    def _reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
        if not (isinstance(subtype, _StandIn) and subtype.name == "numpy.ndarray"):
            self.refuse(f"_reconstruct may only build numpy.ndarray, got {_short(subtype)}")
        # numpy passes (0,) and b"b": nothing is allocated from them, the array is built at BUILD.
        if not isinstance(shape, tuple) or not isinstance(typecode, (bytes, str)):
            self.refuse(f"_reconstruct got unknown arguments {_short((shape, typecode))}")
        return _PendingArray(self)

    def _frombuffer(self, data: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if order not in ("C", "F"):
            self.refuse(f"an array's order must be 'C' or 'F', got {_short(order)}")
        return self.array_from_bytes(data, dtype, shape, order)

    def _scalar(self, dtype: Any, data: Any = None) -> np.generic:
        resolved = self._resolve_dtype(dtype)
        raw = self._raw_bytes(data)
        if len(raw) != resolved.itemsize:
            self.refuse(f"a {resolved} scalar needs {resolved.itemsize} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=resolved)[0]

    def _raw_bytes(self, data: Any) -> bytes | bytearray:
        if isinstance(data, str):  # Python 2 pickles' byte strings, decoded as latin-1
            try:
                return data.encode("latin-1")
            except UnicodeEncodeError:
                self.refuse("an array's data is text, not bytes")
        if not isinstance(data, (bytes, bytearray)):
            self.refuse(f"an array's data must be bytes (object arrays are not read), got {type(data).__name__}")
        return data

    def array_from_bytes(self, data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
        """A new writable array of ``shape`` and ``dtype`` holding ``data``, after every check."""
        resolved = self._resolve_dtype(dtype)
        if not isinstance(shape, tuple) or len(shape) > 32:
            self.refuse(f"an array's shape must be a tuple of at most 32 non-negative integers, got {_short(shape)}")
        count = 1
        for side in shape:
            if not _is_int(side) or side < 0:
                self.refuse(f"an array's shape must be a tuple of at most 32 non-negative integers, got {_short(shape)}")
            count *= int(side)
        raw = self._raw_bytes(data)
        nbytes = count * resolved.itemsize
        if len(raw) != nbytes:
            self.refuse(
                f"an array of shape {tuple(shape)} and dtype {resolved} needs {nbytes} bytes, its data has {len(raw)}"
            )
        self._array_bytes += nbytes
        if self._array_bytes > MAX_ARRAY_BYTES:
            self.refuse(f"its arrays hold more than {MAX_ARRAY_BYTES} bytes")
        flat = np.frombuffer(raw, dtype=resolved, count=count)
        return flat.reshape(tuple(map(int, shape)), order=order).copy(order="K")

    def _encode(self, text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        if not isinstance(text, str) or encoding not in _TEXT_ENCODINGS or errors != "strict":
            self.refuse(f"_codecs.encode is only read for text to bytes, got {_short((text, encoding, errors))}")
        return text.encode(encoding)

    # ------------------------------------------------------------------ builtin stand-ins
    def _bytes(self, *args: Any) -> bytes:
        return bytes(self._byte_source("bytes", args))

    def _bytearray(self, *args: Any) -> bytearray:
        return bytearray(self._byte_source("bytearray", args))

    def _byte_source(self, name: str, args: tuple[Any, ...]) -> Any:
        # Never an integer (bytes(3 << 30) allocates 3 GiB): only data the pickle holds.
        if not args:
            return b""
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray, list, tuple)):
            return args[0]
        if len(args) in (2, 3) and isinstance(args[0], str) and args[1] in _TEXT_ENCODINGS:
            return args[0].encode(args[1])
        self.refuse(f"builtins.{name} got unknown arguments {_short(args)}")

    def _str(self, *args: Any) -> str:
        if not args:
            return ""
        if len(args) == 1 and isinstance(args[0], str):
            return args[0]
        if len(args) in (2, 3) and isinstance(args[0], (bytes, bytearray)) and args[1] in _TEXT_ENCODINGS:
            return args[0].decode(args[1])
        self.refuse(f"builtins.str got unknown arguments {_short(args)}")  # str(x) of a container runs repr on it

    def _number(self, kind: type, args: tuple[Any, ...], most: int) -> Any:
        if len(args) > most or not all(isinstance(a, (numbers.Number, str, bytes)) for a in args):
            self.refuse(f"builtins.{kind.__name__} got unknown arguments {_short(args)}")
        return kind(*args)

    def _int(self, *args: Any) -> int:
        return self._number(int, args, 2)

    def _float(self, *args: Any) -> float:
        return self._number(float, args, 1)

    def _complex(self, *args: Any) -> complex:
        return self._number(complex, args, 2)

    def _bool(self, *args: Any) -> bool:
        return self._number(bool, args, 1)

    def _iterable(self, name: str, args: tuple[Any, ...]) -> Any:
        if not args:
            return ()
        if len(args) == 1 and isinstance(args[0], (list, tuple, set, frozenset, dict, str, bytes, bytearray)):
            return args[0]
        self.refuse(f"builtins.{name} got unknown arguments {_short(args)}")

    def _list(self, *args: Any) -> list[Any]:
        return list(self._iterable("list", args))

    def _tuple(self, *args: Any) -> tuple[Any, ...]:
        return tuple(self._iterable("tuple", args))

    def _set(self, *args: Any) -> set[Any]:
        return set(self.check_keys(self._iterable("set", args)))

    def _frozenset(self, *args: Any) -> frozenset[Any]:
        return frozenset(self.check_keys(self._iterable("frozenset", args)))

    def _dict(self, *args: Any) -> dict[Any, Any]:
        source = self._iterable("dict", args)
        pairs = source.items() if isinstance(source, dict) else source
        result: dict[Any, Any] = {}
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                self.refuse(f"builtins.dict needs (key, value) pairs, got {_short(pair)}")
            result[self.check_key(pair[0])] = pair[1]
        return result

    # ------------------------------------------------------------------ keys
    def check_key(self, key: Any) -> Any:
        """``key`` if it is a small hashable value (see the module docstring), else refuse."""
        pending, count = [key], 0
        while pending:
            value = pending.pop()
            count += 1
            if count > MAX_KEY_ITEMS:
                self.refuse(f"a dict key or set member holds more than {MAX_KEY_ITEMS} values")
            if isinstance(value, (tuple, frozenset)):
                pending.extend(value)
            elif not isinstance(value, _KEY_TYPES):
                self.refuse(f"a dict key or set member must be a number, string, bytes or tuple, got {_short(value)}")
        return key

    def check_keys(self, keys: Any) -> list[Any]:
        return [self.check_key(k) for k in keys]

    # ------------------------------------------------------------------ opcodes
    dispatch = dict(pickle._Unpickler.dispatch)

    def _refuse_opcode(self) -> None:
        self.refuse("the pickle creates class instances (INST, OBJ, NEWOBJ): only numpy arrays and containers are read")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        function = self.stack[-1]
        if not isinstance(function, _StandIn) or function.function is None or not isinstance(args, tuple):
            self.refuse(f"the pickle calls {_short(function)}, which is not an allowed function")
        self.stack[-1] = function.function(*args)

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, (_PendingArray, _PendingDtype)):
            self.refuse(f"the pickle sets the state of {_short(target)}: only arrays and dtypes have one")
        target.__setstate__(state)

    def _load_bytearray8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._size:
            self.refuse(f"a bytearray claims {length} bytes, more than the whole pickle ({self._size})")
        data = self.read(length)
        if len(data) != length:
            self.refuse("the pickle data was truncated")
        self.append(bytearray(data))

    def _container(self, kind: type, operation: str) -> Any:
        target = self.stack[-1]
        if type(target) is not kind:
            self.refuse(f"{operation} applies to a {kind.__name__}, got {_short(target)}")
        return target

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._container(list, "APPEND").append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._container(list, "APPENDS").extend(items)

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.check_key(self.stack.pop())
        self._container(dict, "SETITEM")[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._container(dict, "SETITEMS")
        for i in range(0, len(items), 2):
            target[self.check_key(items[i])] = items[i + 1]

    def _load_dict(self) -> None:
        items = self.pop_mark()
        self.append({self.check_key(items[i]): items[i + 1] for i in range(0, len(items), 2)})

    def _load_additems(self) -> None:
        items = self.pop_mark()
        self._container(set, "ADDITEMS").update(self.check_keys(items))

    def _load_frozenset(self) -> None:
        items = self.pop_mark()  # before self.append: pop_mark rebinds it to the outer stack
        self.append(frozenset(self.check_keys(items)))

    def _load_persistent(self) -> None:
        self.refuse("the pickle refers to persistent ids or out-of-band buffers, which are not read")

    for _opcode, _handler in (
        (pickle.INST, _refuse_opcode),
        (pickle.OBJ, _refuse_opcode),
        (pickle.NEWOBJ, _refuse_opcode),
        (pickle.NEWOBJ_EX, _refuse_opcode),
        (pickle.REDUCE, _load_reduce),
        (pickle.BUILD, _load_build),
        (pickle.BYTEARRAY8, _load_bytearray8),
        (pickle.APPEND, _load_append),
        (pickle.APPENDS, _load_appends),
        (pickle.SETITEM, _load_setitem),
        (pickle.SETITEMS, _load_setitems),
        (pickle.DICT, _load_dict),
        (pickle.ADDITEMS, _load_additems),
        (pickle.FROZENSET, _load_frozenset),
        (pickle.PERSID, _load_persistent),
        (pickle.BINPERSID, _load_persistent),
        (pickle.NEXT_BUFFER, _load_persistent),
        (pickle.READONLY_BUFFER, _load_persistent),
    ):
        dispatch[_opcode[0]] = _handler
    del _opcode, _handler


#: (module, name) → the method of RestrictedUnpickler it stands for (None: a name that cannot be called).
_ALLOWED_GLOBALS: dict[tuple[str, str], str | None] = {
    ("numpy", "dtype"): "_dtype",
    ("numpy", "ndarray"): None,  # only an argument of _reconstruct
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "scalar"): "_scalar",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
    ("_codecs", "encode"): "_encode",
} | {
    ("builtins", name): f"_{name}"
    for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes", "bytearray")
}


class _Resolver:
    """Replaces the arrays under construction by their arrays and checks the loaded value's size.

    Sizes count shared references each time they are reached: a pickle of 1.5 KB can share
    one list 2^30 times, which ``np.asarray`` or a deep copy would turn into gigabytes.
    """

    def __init__(self, unpickler: RestrictedUnpickler) -> None:
        self.refuse = unpickler.refuse
        self.done: dict[int, tuple[Any, int, int]] = {}  # id → (value, items, array bytes)
        self.active: set[int] = set()

    def resolve(self, value: Any) -> Any:
        return self._visit(value, 0)[0]

    def _visit(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if depth > MAX_DEPTH:
            self.refuse(f"containers are nested more than {MAX_DEPTH} deep")
        if key in self.active:
            self.refuse("a container contains itself")
        self.active.add(key)
        result = self._build(obj, depth)
        self.active.discard(key)
        if result[1] > MAX_ITEMS:
            self.refuse(f"it expands to more than {MAX_ITEMS} values (shared references counted each time)")
        if result[2] > MAX_ARRAY_BYTES:
            self.refuse(f"its arrays expand to more than {MAX_ARRAY_BYTES} bytes (shared references counted each time)")
        self.done[key] = result
        return result

    def _children(self, items: Any, depth: int) -> tuple[list[Any], int, int]:
        values, count, nbytes = [], 1, 0
        for item in items:
            value, item_count, item_bytes = self._visit(item, depth + 1)
            values.append(value)
            count, nbytes = count + item_count, nbytes + item_bytes
            if count > MAX_ITEMS or nbytes > MAX_ARRAY_BYTES:
                break  # _visit refuses it
        return values, count, nbytes

    def _build(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        if isinstance(obj, _PendingArray):
            if obj.array is None:
                self.refuse("an array was announced but its shape, dtype and data never came")
            return obj.array, 1, obj.array.nbytes
        if isinstance(obj, np.ndarray):
            return obj, 1, obj.nbytes
        if isinstance(obj, _PendingDtype):
            return obj.dtype(), 1, 0
        if isinstance(obj, list):
            values, count, nbytes = self._children(obj, depth)
            if count <= MAX_ITEMS and nbytes <= MAX_ARRAY_BYTES:
                obj[:] = values
            return obj, count, nbytes
        if isinstance(obj, dict):
            values, count, nbytes = self._children(obj.values(), depth)
            if count <= MAX_ITEMS and nbytes <= MAX_ARRAY_BYTES:
                for k, v in zip(list(obj), values):
                    obj[k] = v
            return obj, count + len(obj), nbytes
        if isinstance(obj, tuple):
            values, count, nbytes = self._children(obj, depth)
            changed = len(values) == len(obj) and any(v is not o for v, o in zip(values, obj))
            return (tuple(values) if changed else obj), count, nbytes
        if isinstance(obj, (set, frozenset)):  # members passed check_key: small flat values
            return obj, 1 + len(obj), 0
        if isinstance(obj, _KEY_TYPES + (bytearray,)):
            return obj, 1, 0
        self.refuse(f"the pickle holds {_short(obj)}, which is not data")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer))


def _short(value: Any) -> str:
    """A repr for messages that cannot blow up on a huge or shared structure."""
    if isinstance(value, (str, bytes, int, float, bool, type(None), _StandIn, np.dtype)):
        text = repr(value)
    elif isinstance(value, tuple) and len(value) <= 9:
        text = "(" + ", ".join(_short(v) if not isinstance(v, (tuple, list, dict)) else type(v).__name__ for v in value) + ")"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 120 else text[:117] + "..."


def safe_load_pickle(path: str | os.PathLike[str]) -> Any:
    """Load the pickle file ``path`` with :class:`RestrictedUnpickler` (Python 2 byte strings as latin-1).

    Raises:
        UnsafePickleError: the pickle breaks a rule of this module or is malformed; the message
            names ``path``.
        FileNotFoundError / OSError: ``path`` cannot be read.
    """
    with open_source_file(path) as file:
        return RestrictedUnpickler(file, encoding="latin1", source=repr(str(Path(path)))).load()
