"""Bad input gets the named exception with the command line's message, and the interpreter
lives on."""
import os
import struct

import pytest

import ggswarm
from conftest import cli, cli_error, synth
from gguf_writer import gguf_bytes, sample_tensors


def test_a_path_that_is_not_there(tmp_path):
    missing = str(tmp_path / "nothing.gguf")
    with pytest.raises(ggswarm.NotFoundError) as e:
        ggswarm.load_model(missing)
    assert str(e.value) == cli_error("inspect", missing)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ggswarm.Error)
    with pytest.raises(ggswarm.NotFoundError):
        ggswarm.Bridge(missing)


def hostile_files():
    tensors = [t[:4] for t in sample_tensors()]
    good, _ = gguf_bytes({"general.architecture": "llama"}, tensors)
    yield "truncated header", good[:40]
    yield "not a GGUF", b"GGML" + good[4:]
    yield "version 9", good[:4] + struct.pack("<I", 9) + good[8:]
    yield "2^60 tensors", good[:8] + struct.pack("<Q", 1 << 60) + good[16:]
    yield "2^62 key/values", good[:16] + struct.pack("<Q", 1 << 62) + good[24:]
    # The first key's length claims more bytes than the file holds.
    yield "lying string length", good[:24] + struct.pack("<Q", 1 << 40) + good[32:]
    # The data ends before the last tensor's bytes.
    yield "data cut short", good[:-40]


@pytest.mark.parametrize("what,data", list(hostile_files()), ids=[w for w, _ in hostile_files()])
def test_hostile_gguf(what, data, tmp_path):
    path = str(tmp_path / "hostile.gguf")
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ggswarm.BadFileError) as e:
        ggswarm.load_model(path)
    assert str(e.value) == cli_error("inspect", path)
    with pytest.raises(ggswarm.Error):
        ggswarm.Bridge(path)
    # The interpreter lives on, and the module still works.
    assert ggswarm.load_model  # noqa


def test_corrupt_fragment(synth_dir, tmp_path):
    path = synth(synth_dir, "Q8_0")
    frag = str(tmp_path / "frag")
    ggswarm.fragment(path, frag, chunk_size="64K", torrent=False)
    assert ggswarm.verify(frag)["whole_file_checked"]
    model = ggswarm.load_model(frag)
    victim = "blk.1.ffn_down.weight"
    shards = sorted(f for f in os.listdir(frag) if f.endswith(".dat") and "header" not in f)
    # Flip one byte in the middle of every fragment file but the header.
    for name in shards:
        with open(os.path.join(frag, name), "r+b") as f:
            f.seek(os.path.getsize(f.name) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x40]))
    with pytest.raises(ggswarm.CorruptFragmentError) as e:
        ggswarm.verify(frag)
    assert len(e.value.problems) == len(shards)
    assert {f for f, _ in e.value.problems} == set(shards)
    assert all("SHA-256" in what for _, what in e.value.problems)
    assert isinstance(e.value, ggswarm.BadFileError)
    with pytest.raises(ggswarm.CorruptFragmentError) as e:
        model.get_tensor(victim)
    assert "SHA-256" in str(e.value)
    with pytest.raises(ggswarm.CorruptFragmentError):
        ggswarm.reassemble(frag, str(tmp_path / "copy.gguf"))
    assert not os.path.exists(tmp_path / "copy.gguf")


def test_nothing_the_user_had_is_overwritten(synth_dir, tmp_path):
    path = synth(synth_dir, "Q8_0")
    frag = str(tmp_path / "frag")
    ggswarm.fragment(path, frag, torrent=False)
    out = tmp_path / "precious.gguf"
    out.write_bytes(b"mine")
    with pytest.raises(ggswarm.ExistsError) as e:
        ggswarm.reassemble(frag, str(out))
    assert str(e.value) == cli_error("reassemble", frag, out)
    assert isinstance(e.value, FileExistsError)
    assert out.read_bytes() == b"mine"
    assert ggswarm.reassemble(frag, str(out), force=True)["bytes"] == os.path.getsize(path)
    with pytest.raises(ggswarm.ExistsError):
        ggswarm.fragment(path, frag, torrent=False)


def test_bad_arguments(synth_dir):
    model = ggswarm.load_model(synth(synth_dir, "Q8_0"))
    with pytest.raises(ggswarm.NotFoundError, match='no tensor named "nope"'):
        model.get_tensor("nope")
    with pytest.raises(IndexError):
        model.get_tensor("token_embd.weight", rows=10**6)
    with pytest.raises(TypeError):
        model.get_tensor("token_embd.weight", rows="all")
    with pytest.raises(ggswarm.InvalidArgumentError) as e:
        model.detokenize([1, -5])
    assert isinstance(e.value, ValueError)
    with pytest.raises(ggswarm.InvalidArgumentError):
        ggswarm.fragment("x.gguf", "y", chunk_size="lots")
    bridge = ggswarm.Bridge(synth(synth_dir, "Q8_0", preset="micro"), threads=1)
    with pytest.raises(ggswarm.InvalidArgumentError, match="temperature"):
        bridge.generate("hi", temperature=-1)
    # The engine is fine after a refused call.
    assert bridge.generate("hi", max_tokens=4, temperature=0) == \
        bridge.generate("hi", max_tokens=4, temperature=0)


def test_no_stage_answers():
    with pytest.raises(ggswarm.NetworkError) as e:
        ggswarm.Bridge("swarm://127.0.0.1:1/model")
    assert isinstance(e.value, OSError)


def test_bad_swarm_options():
    with pytest.raises(ValueError, match="verify_fraction"):
        ggswarm.Bridge("swarm://127.0.0.1:1/model", verify_fraction=2)
    # dht:// wants the model's whole id; a bootstrap node must be an IP address and a port.
    with pytest.raises(ggswarm.InvalidArgumentError, match="64 hex digits"):
        ggswarm.Bridge("dht://abc", dht_bootstrap=["127.0.0.1:1"])
    with pytest.raises(ggswarm.InvalidArgumentError, match="dht-bootstrap"):
        ggswarm.Bridge("dht://" + "a" * 64, dht_bootstrap=["localhost:1"])
