"""The type stubs describe the module as it is: every public name and method of the native
module appears in _ggswarm.pyi, and everything the stubs promise exists."""
import ast
import os

import ggswarm
from ggswarm import _ggswarm


def stub_names():
    path = os.path.join(os.path.dirname(ggswarm.__file__), "_ggswarm.pyi")
    tree = ast.parse(open(path).read())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign):
                    members.add(item.target.id)
            names[node.name] = members
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = None
    return names


def test_stubs_match_the_module():
    stubs = stub_names()
    typed_dicts = {n for n in stubs if n.endswith("Result")}
    public = {n for n in dir(_ggswarm) if not n.startswith("__") or n == "__version__"}
    assert public <= set(stubs), f"not in the stubs: {public - set(stubs)}"
    for name, members in stubs.items():
        if name in typed_dicts:
            continue
        assert hasattr(_ggswarm, name), f"the stubs promise {name}"
        obj = getattr(_ggswarm, name)
        if members is not None:
            runtime = {m for m in dir(obj) if not m.startswith("_") or m in ("__next__", "__iter__", "__enter__", "__exit__", "__init__")}
            assert members <= set(dir(obj)), f"{name}: not there: {members - set(dir(obj))}"
            missing = {m for m in runtime if not m.startswith("_")} - members
            assert not missing, f"{name}: not in the stubs: {missing}"
    for name in ggswarm.__all__:
        assert hasattr(ggswarm, name)
        doc = getattr(ggswarm, name).__doc__
        assert name == "__version__" or (doc and doc.strip()), f"{name} has no docstring"
