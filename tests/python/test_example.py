"""examples/embeddings.py, checked against cosine similarities computed here from the
`ggswarm tensor --out` file."""
import os
import re
import subprocess
import sys

import numpy as np

from conftest import SOURCE, cli, shared_model


def test_embeddings_example(tmp_path):
    path = shared_model("stories260K-f32")
    out = subprocess.run([sys.executable, os.path.join(SOURCE, "examples/embeddings.py"), path,
                          "dog", "--top", "5"], capture_output=True, text=True, timeout=120,
                         env=os.environ)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    token = int(re.match(r"token (\d+) ", lines[0]).group(1))
    _, ids_json, _ = cli("tokenize", path, "dog", "--json")
    assert token == int(ids_json.strip("[]\n").split(",")[-1])
    cli("tensor", path, "token_embd.weight", "--out", tmp_path / "e.npy", "--count", "0")
    emb = np.load(tmp_path / "e.npy").astype(np.float64)
    sim = emb @ emb[token] / (np.linalg.norm(emb, axis=1) * np.linalg.norm(emb[token]))
    want = np.argsort(-sim, kind="stable")[:5]
    got = [(int(l.split()[1]), float(l.split()[2])) for l in lines[1:]]
    assert [i for i, _ in got] == list(want)
    assert got[0] == (token, 1.0)
    for i, s in got:
        assert abs(s - sim[i]) < 1e-4


def test_embeddings_example_on_a_bad_path(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(SOURCE, "examples/embeddings.py"),
                          str(tmp_path / "none.gguf")], capture_output=True, text=True,
                         timeout=60, env=os.environ)
    assert out.returncode == 1
    assert "no such file or directory" in out.stderr
