"""ggswarm: GGUF language models on this machine or across a swarm of peers.

    import ggswarm
    bridge = ggswarm.Bridge("out/tinyllama")   # a GGUF file, a fragment directory, or
                                               # "swarm://HOST:PORT/MODEL"
    print(bridge.generate("Hello", max_tokens=50))
    for piece in bridge.stream("Hello", max_tokens=50, temperature=0):
        print(piece, end="", flush=True)

    model = ggswarm.load_model("tinyllama.Q8_0.gguf")   # or a fragment directory
    emb = model.get_tensor("token_embd.weight")          # numpy float32, rows first
    row = model.get_tensor("token_embd.weight", rows=slice(1, 2))
    raw = model.get_tensor("blk.0.attn_q.weight", dequantize=False)

    ggswarm.fragment("m.gguf", "out/m"); ggswarm.verify("out/m")
    ggswarm.reassemble("out/m", "copy.gguf")

Errors are ggswarm.Error subclasses whose text is the command line's message.
"""


class Error(Exception):
    """Every error ggswarm raises; str(e) is the message `ggswarm` would print."""


class InvalidArgumentError(Error, ValueError):
    """An argument outside what the call accepts (a sampling value, a token id, a size)."""


class NotFoundError(Error, FileNotFoundError):
    """A file, directory, tensor or model that is not there."""


class BadFileError(Error):
    """A file that is not what it claims: a malformed or hostile GGUF, a lying length."""


class CorruptFragmentError(BadFileError):
    """A fragment directory whose files do not match manifest.json (size, SHA-256, missing).

    From verify(), .problems lists (file, what) for each.
    """

    problems: list = []


class UnsupportedError(Error):
    """Something ggswarm does not do: a tensor type it cannot dequantize, an architecture."""


class ExistsError(Error, FileExistsError):
    """An output that already exists (pass force=True to replace it)."""


class IoError(Error, OSError):
    """Reading or writing failed."""


class NetworkError(IoError):
    """The swarm failed: no stage answers, a stage died and no other could take over."""


class UnavailableError(Error):
    """Busy now; the same call may succeed later."""


from ._ggswarm import (  # noqa: E402
    Bridge,
    Model,
    TensorInfo,
    TextStream,
    __version__,
    fragment,
    load_model,
    reassemble,
    verify,
)
from . import _ggswarm  # noqa: E402

_ggswarm._set_error_classes({
    name: cls for name, cls in globals().items()
    if isinstance(cls, type) and issubclass(cls, Error)
})

__all__ = [
    "Bridge", "Model", "TensorInfo", "TextStream", "load_model", "fragment", "verify",
    "reassemble", "Error", "InvalidArgumentError", "NotFoundError", "BadFileError",
    "CorruptFragmentError", "UnsupportedError", "ExistsError", "IoError", "NetworkError",
    "UnavailableError", "__version__",
]
