"""load_model / get_tensor against `ggswarm tensor --out T.npy` (every type ggswarm can
dequantize), the file's own bytes, and values written by hand."""
import json
import os

import numpy as np
import pytest

import ggswarm
from conftest import cli, synth
from gguf_writer import gguf_bytes, sample_tensors

# Every type `ggswarm synth` makes, which is every type ggswarm dequantizes.
TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
         "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def cli_npy(model, name, tmp_path):
    out = tmp_path / (name + ".npy")
    cli("tensor", model, name, "--out", out, "--count", "0", "--force")
    return np.load(out)


@pytest.mark.parametrize("type_name", TYPES)
def test_every_tensor_matches_the_cli(type_name, synth_dir, tmp_path):
    path = synth(synth_dir, type_name)
    model = ggswarm.load_model(path)
    assert any(t.type == type_name for t in model.tensors), "the model holds no tensor of the type"
    inspected = json.loads(cli("inspect", path, "--json")[1])
    assert [t.name for t in model.tensors] == [t["name"] for t in inspected["tensors"]]
    with open(path, "rb") as f:
        file_bytes = f.read()
    for info, want in zip(model.tensors, inspected["tensors"]):
        assert info.type == want["type"]
        assert list(info.ggml_shape) == want["shape"]
        assert info.shape == tuple(reversed(want["shape"]))
        assert (info.offset, info.n_bytes) == (want["offset"], want["size"])
        values = model.get_tensor(info.name)
        assert same_bits(values, cli_npy(path, info.name, tmp_path)), info.name
        assert values.dtype == np.float32 and values.shape == info.shape
        raw = model.get_tensor(info.name, dequantize=False)
        assert raw.dtype == np.uint8
        assert raw.tobytes() == file_bytes[info.offset:info.offset + info.n_bytes], info.name
        if len(info.shape) == 2:
            rows = info.shape[0]
            assert raw.shape == (rows, info.n_bytes // rows)
            for sel in (slice(1, 3), slice(None, None, 3), slice(-2, None), slice(5, 2), 4, -1):
                assert same_bits(model.get_tensor(info.name, rows=sel), values[sel]), (info.name, sel)
                assert same_bits(model.get_tensor(info.name, rows=sel, dequantize=False),
                                 np.ascontiguousarray(raw[sel])), (info.name, sel)
        else:
            assert same_bits(model.get_tensor(info.name, rows=slice(2, 9)), values[2:9])


def test_raw_bytes_are_a_read_only_view_of_the_mapped_file(synth_dir):
    model = ggswarm.load_model(synth(synth_dir, "Q8_0"))
    raw = model.get_tensor("token_embd.weight", dequantize=False)
    assert not raw.flags.owndata and not raw.flags.writeable
    with pytest.raises(ValueError):
        raw[0, 0] = 1
    row = model.get_tensor("token_embd.weight", rows=slice(3, 4), dequantize=False)
    assert not row.flags.owndata
    del model  # the arrays keep the mapping alive
    assert row.tobytes() == raw[3:4].tobytes()


def test_fragment_directory_gives_the_same_arrays(synth_dir, tmp_path):
    path = synth(synth_dir, "Q4_K")
    frag = tmp_path / "frag"
    # Small fragments, so that large tensors are cut into row-shards across files.
    result = ggswarm.fragment(path, str(frag), chunk_size="16K")
    assert result["fragments"] > 4 and len(result["info_hash"]) == 64
    a, b = ggswarm.load_model(path), ggswarm.load_model(str(frag))
    assert a.metadata == b.metadata
    for info in a.tensors:
        assert same_bits(a.get_tensor(info.name), b.get_tensor(info.name)), info.name
        assert same_bits(a.get_tensor(info.name, dequantize=False),
                         b.get_tensor(info.name, dequantize=False)), info.name
    sel = slice(100, 300)
    assert same_bits(b.get_tensor("token_embd.weight", rows=sel),
                     a.get_tensor("token_embd.weight")[sel])


def test_hand_written_gguf(tmp_path):
    tensors = sample_tensors()
    data, offsets = gguf_bytes({"general.architecture": "none", "general.name": "by hand",
                                "x.count": 7, "x.ratio": 0.5, "x.flag": True},
                               [t[:4] for t in tensors])
    path = tmp_path / "hand.gguf"
    path.write_bytes(data)
    model = ggswarm.load_model(str(path))
    assert model.metadata == {"general.architecture": "none", "general.name": "by hand",
                              "x.count": 7, "x.ratio": 0.5, "x.flag": True}
    assert [(t.name, t.type, t.ggml_shape) for t in model.tensors] == \
        [(n, ty, tuple(s)) for n, ty, s, _, _ in tensors]
    for name, type_name, shape, raw, values in tensors:
        got = model.get_tensor(name, dequantize=False)
        assert got.tobytes() == raw
        assert model.tensors[[t.name for t in model.tensors].index(name)].offset == offsets[name]
        if values is not None:
            assert same_bits(model.get_tensor(name), values)
        else:
            with pytest.raises(ggswarm.UnsupportedError, match=f"cannot dequantize type {type_name}"):
                model.get_tensor(name)


@pytest.mark.parametrize("name", ["stories260K-f32", "llama-2-tiny-random"])
def test_tokenize_and_detokenize_are_llama_cpps(name):
    from conftest import golden, shared_model
    path = shared_model(name)
    model = ggswarm.load_model(path)
    cases = golden(f"{name}.tokenize.json")
    assert len(cases) > 5
    for case in cases:
        assert model.tokenize(case["text"]) == case["tokens"], case["text"]
        # llama.cpp's detokenization of the ids without BOS, special tokens as text.
        assert model.detokenize(case["tokens"][1:], unparse_special=True) == case["detok"]
    text = "Once upon a time, there was a dog."
    assert model.tokenize(text) == json.loads(cli("tokenize", path, text, "--json")[1])
    assert model.metadata["llama.context_length"] == \
        json.loads(cli("inspect", path, "--json")[1])["metadata"]["llama.context_length"]
