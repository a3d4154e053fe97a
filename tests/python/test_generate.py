"""Bridge.generate / stream against llama.cpp's goldens and `ggswarm run`, from a GGUF file,
a fragment directory and a swarm of two local stages; Ctrl-C and threads."""
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

import ggswarm
from conftest import CLI, cli, golden, shared_model, synth, wait_until


TINYSTORIES = [f"{m}-{t}" for m in ("stories260K", "llama2xs-tinystories-280K")
               for t in ("f32", "f16", "q8_0")]


@pytest.mark.parametrize("model", TINYSTORIES)
@pytest.mark.parametrize("prompt", ["p1", "p2"])
def test_greedy_text_is_llama_cpps(model, prompt):
    g = golden(f"{model}.{prompt}.json")
    bridge = ggswarm.Bridge(shared_model(model), threads=2)
    n = len(g["generated_tokens"])
    text = bridge.generate(g["prompt"], max_tokens=n, temperature=0, ignore_eos=True)
    assert text == g["generated_text"]
    pieces = list(bridge.stream(g["prompt"], max_tokens=n, temperature=0, ignore_eos=True))
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == text


def test_sampling_with_a_seed_is_ggswarm_runs():
    path = shared_model("stories260K-q8_0")
    bridge = ggswarm.Bridge(path, threads=1)
    text = bridge.generate("Once upon a time", max_tokens=48, temperature=0.9, seed=1234)
    _, out, _ = cli("run", path, "-p", "Once upon a time", "-n", 48, "--temp", 0.9, "--seed", 1234,
                    "-t", 1)
    assert out == text + "\n"
    assert bridge.generate("Once upon a time", max_tokens=48, temperature=0.9, seed=1234) == text


def test_from_a_fragment_directory(tmp_path):
    g = golden("stories260K-f32.p1.json")
    frag = str(tmp_path / "frag")
    ggswarm.fragment(shared_model("stories260K-f32"), frag, chunk_size="16K")
    text = ggswarm.Bridge(frag, threads=2).generate(g["prompt"], max_tokens=64, temperature=0,
                                                    ignore_eos=True)
    assert text == g["generated_text"]


class Stage:
    def __init__(self, model, layers, peer=None):
        args = [CLI, "serve", model, "--layers", layers, "--listen", "127.0.0.1:0", "-t", "1"]
        if peer:
            args += ["--peer", peer]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.address = None
        for line in self.proc.stdout:  # blocks until the stage says where it serves
            m = re.search(r"serving .* at (127\.0\.0\.1:\d+) ", line)
            if m:
                self.address = m.group(1)
                break
        assert self.address, "the stage did not start"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def answering_stages(address):
    code, out, _ = cli("stages", f"swarm://{address}/", check=False)
    return sum(1 for line in out.splitlines() if re.search(r" \d+\.\d ms", line)) if code == 0 else 0


def test_swarm_of_two_local_stages():
    g = golden("stories260K-f32.p1.json")
    model = shared_model("stories260K-f32")
    n_layer = ggswarm.load_model(model).metadata["llama.block_count"]
    first = Stage(model, f"0-{n_layer // 2 - 1}")
    second = Stage(model, f"{n_layer // 2}-{n_layer - 1}", peer=first.address)
    try:
        wait_until("both stages to answer", lambda: answering_stages(first.address) >= 2)
        bridge = ggswarm.Bridge(f"swarm://{first.address}/")
        text = bridge.generate(g["prompt"], max_tokens=64, temperature=0, ignore_eos=True)
        assert text == g["generated_text"]
        assert "".join(bridge.stream(g["prompt"], max_tokens=64, temperature=0,
                                     ignore_eos=True)) == text
    finally:
        second.stop()
        first.stop()


# A child whose one generation would run for minutes (a micro model with a context of 65536
# positions, to the end of it) until Ctrl-C; then the engine must give the greedy text it
# gave before. A second thread says when the main one is inside generate(): it can only run
# once the main thread has given up the GIL there.
CHILD = r"""
import sys, threading, ggswarm
bridge = ggswarm.Bridge(sys.argv[1], threads=1, ctx=65536)
want = bridge.generate("Once upon a time", max_tokens=32, temperature=0, ignore_eos=True)
inside = threading.Event()
def say():
    inside.wait()
    print("generating", flush=True)
threading.Thread(target=say, daemon=True).start()
try:
    inside.set()
    bridge.generate("Once upon a time", max_tokens=-1, ignore_eos=True)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
again = bridge.generate("Once upon a time", max_tokens=32, temperature=0, ignore_eos=True)
print("same" if again == want else "different", flush=True)
"""


def test_ctrl_c_stops_a_generation_and_the_engine_carries_on(tmp_path):
    model = str(tmp_path / "long.gguf")
    cli("synth", model, "--preset", "micro", "--n-ctx", 65536)
    child = subprocess.Popen([sys.executable, "-c", CHILD, model], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert child.stdout.readline() == "generating\n", child.stderr.read()
        child.send_signal(signal.SIGINT)
        # Uninterrupted, the generation would take minutes: the deadline is the check.
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.split("\n")[:2] == ["interrupted", "same"], out + err


def test_generation_releases_the_gil(synth_dir):
    bridge = ggswarm.Bridge(synth(synth_dir, "Q8_0"), threads=1)
    done = threading.Event()
    result = []

    def work():
        result.append(bridge.generate("Once", max_tokens=200, temperature=0, ignore_eos=True))
        done.set()

    t = threading.Thread(target=work)
    t.start()
    spins = 0
    while not done.is_set():  # Python keeps running while the engine computes
        spins += 1
    t.join()
    assert result and spins > 1000


def test_closing_a_stream_stops_it(synth_dir):
    bridge = ggswarm.Bridge(synth(synth_dir, "Q8_0"), threads=1)
    s = bridge.stream("Once", max_tokens=-1, temperature=0, ignore_eos=True)
    first = next(s)
    s.close()
    assert list(s) == []
    assert bridge.generate("Once", max_tokens=3, temperature=0, ignore_eos=True).startswith(first)
