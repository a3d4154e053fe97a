"""A minimal GGUF v3 writer for tests: the bytes it writes are the independent truth that
ggswarm's reader is checked against (and, mutated, the hostile files it must refuse)."""
import struct

import numpy as np

TYPES = {"F32": 0, "F16": 1, "Q8_0": 8, "IQ4_NL": 20, "I32": 26}
ALIGNMENT = 32


def _string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def _value(v):
    if isinstance(v, bool):
        return struct.pack("<I", 7) + struct.pack("<?", v)
    if isinstance(v, int):
        return struct.pack("<I", 4) + struct.pack("<I", v)
    if isinstance(v, float):
        return struct.pack("<I", 6) + struct.pack("<f", v)
    if isinstance(v, str):
        return struct.pack("<I", 8) + _string(v)
    raise TypeError(v)


def gguf_bytes(metadata, tensors):
    """metadata: {key: str|int|float|bool}; tensors: [(name, type name, ggml shape, bytes)].
    Returns (file bytes, {name: absolute offset of its data})."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for k, v in metadata.items():
        head += _string(k) + _value(v)
    offset = 0
    offsets = {}
    for name, type_name, shape, data in tensors:
        head += _string(name) + struct.pack("<I", len(shape))
        head += b"".join(struct.pack("<Q", d) for d in shape)
        head += struct.pack("<IQ", TYPES[type_name], offset)
        offsets[name] = offset
        offset += len(data)
        offset += -offset % ALIGNMENT
    head += b"\0" * (-len(head) % ALIGNMENT)
    body = b""
    for name, _, _, data in tensors:
        body += data + b"\0" * (-len(data) % ALIGNMENT)
    return head + body, {n: len(head) + o for n, o in offsets.items()}


def sample_tensors():
    """Tensors whose values are known: F32 and F16 matrices, an IQ4_NL matrix ggswarm reads
    but cannot dequantize, and an I32 vector."""
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)  # NumPy order: 3 rows of 4
    f16 = rng.standard_normal((5, 8)).astype(np.float16)
    iq4 = rng.integers(0, 256, size=2 * 36, dtype=np.uint8)  # 2 rows of 64: 2 blocks each
    i32 = np.arange(4, dtype=np.int32)
    return [("a.f32", "F32", [4, 3], f32.tobytes(), f32),
            ("b.f16", "F16", [8, 5], f16.tobytes(), f16.astype(np.float32)),
            ("c.iq4_nl", "IQ4_NL", [64, 2], iq4.tobytes(), None),
            ("d.i32", "I32", [4], i32.tobytes(), None)]
