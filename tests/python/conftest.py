"""Shared fixtures of the Python module's tests (run by CTest: tests/python/run.sh).

GGSWARM_CLI names the `ggswarm` program (the truth the module is compared with),
GGSWARM_SHARED the shared/ directory (tests that need its models skip without it).
"""
import json
import os
import subprocess
import sys
import time

import pytest

CLI = os.environ.get("GGSWARM_CLI", "ggswarm")
SHARED = os.environ.get("GGSWARM_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def shared_model(name):
    path = os.path.join(SHARED, "models", name + ".gguf")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is absent (../shared/models is needed)")
    return path


def golden(name):
    with open(os.path.join(SHARED, "golden", name)) as f:
        return json.load(f)


def cli(*args, check=True):
    """Runs `ggswarm ARGS`; returns (exit code, stdout, stderr)."""
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"ggswarm {' '.join(map(str, args))}: {r.returncode}\n{r.stderr}")
    return r.returncode, r.stdout, r.stderr


def cli_error(*args):
    """The message `ggswarm ARGS` fails with (its stderr line without 'ggswarm: error: ')."""
    code, _, err = cli(*args, check=False)
    assert code != 0, f"ggswarm {args} succeeded"
    prefix = "ggswarm: error: "
    line = [l for l in err.splitlines() if l.startswith(prefix)][-1]
    return line[len(prefix):]


def wait_until(what, done, seconds=60):
    """Polls done() until it holds, failing after `seconds`: the one way tests wait."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


def synth(directory, type_name, preset="tiny"):
    """A deterministic random model of one tensor type, made once per session."""
    path = os.path.join(directory, f"{preset}-{type_name}.gguf")
    if not os.path.exists(path):
        cli("synth", path, "--preset", preset, "--type", type_name, "--seed", "1")
    return path
