"""Reader for CTranslate2 `model.bin` files, so their weights load without the ctranslate2 runtime."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from omnireward.errors import ModelError

# Type ids in the order CTranslate2 writes them (specs/model_spec.py, `_dtype_to_type_id`).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_SUPPORTED_VERSIONS = (5, 6)


class _Cursor:
    """Little-endian reads over a byte buffer."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ModelError("CTranslate2 model file is truncated", file=self.path)
        value = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        n = self.take("H")  # length includes the trailing NUL
        raw = self.data[self.pos : self.pos + n - 1]
        self.pos += n
        return raw.decode("utf-8")

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelError("CTranslate2 model file is truncated", file=self.path)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 model.bin into (spec name, {variable name: array}); aliases are resolved."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read CTranslate2 model: {err.strerror or err}", file=path) from err
    cur = _Cursor(data, path)
    version = cur.take("I")
    if version not in _SUPPORTED_VERSIONS:
        raise ModelError(f"unsupported CTranslate2 binary version {version}", file=path)
    spec = cur.string()
    cur.take("I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.take("I")):
        name = cur.string()
        rank = cur.take("B")
        shape = tuple(cur.take("I") for _ in range(rank))
        type_id = cur.take("B")
        if type_id >= len(_DTYPES):
            raise ModelError(f"unknown dtype id {type_id} for variable {name}", file=path)
        nbytes = cur.take("I")
        dtype = _DTYPES[type_id]
        buf = cur.raw(nbytes)
        if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32 through the high half
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(dtype).newbyteorder("<"))
        variables[name] = arr.reshape(shape)
    for _ in range(cur.take("I")):
        alias, target = cur.string(), cur.string()
        variables[alias] = variables[target]
    return spec, variables
