"""Type stubs for ggswarm's native module (import ggswarm, not this)."""
from typing import Any, Iterator, Optional, TypedDict, Union

import numpy
import numpy.typing

__version__: str

def _set_error_classes(classes: dict[str, type]) -> None: ...

class TextStream(Iterator[str]):
    """The pieces of one generation, as they are produced."""
    def __iter__(self) -> "TextStream": ...
    def __next__(self) -> str: ...
    def close(self) -> None:
        """Stops the generation; iterating further ends at once."""
    def __enter__(self) -> "TextStream": ...
    def __exit__(self, *args: Any) -> None: ...

class Bridge:
    """Text generation from a GGUF file, a fragment directory, swarm://HOST:PORT/MODEL or
    dht://MODEL_ID."""
    def __init__(self, model: str, threads: int = 0, ctx: int = 0, token: str = "",
                 hidden_f16: bool = False, tls_ca: str = "",
                 dht_bootstrap: list[str] = [], verify_fraction: float = 0.0) -> None:
        """threads: compute threads (0: one per core); ctx: context size (0: the model's, at
        most 4096); token: the stages' --token; hidden_f16: f16 hidden states between stages;
        tls_ca: the stages' CA certificate (PEM) when they use TLS; dht_bootstrap: DHT nodes
        (HOST:PORT) to find dht:// stages through; verify_fraction: steps also computed on
        other stages, a disagreeing stage banned (0 to 1)."""
    def generate(self, prompt: str, max_tokens: int = 128, temperature: float = 0.8,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 repeat_penalty: float = 1.1, seed: Optional[int] = None,
                 ignore_eos: bool = False) -> str:
        """The text that follows `prompt`, as `ggswarm run` prints it with the same sampling
        and seed (None: a random seed). temperature 0 is greedy; max_tokens -1 runs to the
        end of generation or a full context. Ctrl-C stops it (KeyboardInterrupt)."""
    def stream(self, prompt: str, max_tokens: int = 128, temperature: float = 0.8,
               top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
               repeat_penalty: float = 1.1, seed: Optional[int] = None,
               ignore_eos: bool = False) -> TextStream:
        """generate() as an iterator of text pieces that join to its text."""
    @property
    def n_ctx(self) -> int: ...
    @property
    def model(self) -> str: ...

class TensorInfo:
    """A tensor's name, type and shape, from the header."""
    name: str
    type: str
    """The ggml type's name: F32, F16, Q8_0, Q4_K…"""
    shape: tuple[int, ...]
    """NumPy's order (rows first): the shape get_tensor() returns."""
    ggml_shape: tuple[int, ...]
    """GGUF's order (ne[0], a row's length, first)."""
    n_elements: int
    n_bytes: int
    offset: int
    """Where the tensor's bytes start in the GGUF file."""

class Model:
    """A GGUF file or fragment directory, opened for reading."""
    path: str
    architecture: str
    metadata: dict[str, Any]
    """The header's key/values: str, int, float, bool, or lists of them."""
    tensors: list[TensorInfo]
    def get_tensor(self, name: str, *, rows: Union[slice, int, None] = None,
                   dequantize: bool = True) -> numpy.typing.NDArray[Any]:
        """float32 values (dequantize=True) or the raw bytes as uint8 (a row's bytes last;
        a read-only view of the mapped file where possible), rows first. rows selects along
        the first axis, as get_tensor(name)[rows], reading only those rows."""
    def tokenize(self, text: str, add_special: bool = True,
                 parse_special: bool = True) -> list[int]: ...
    def detokenize(self, ids: list[int], remove_special: bool = False,
                   unparse_special: bool = False) -> str: ...

def load_model(path: str) -> Model:
    """Opens a GGUF file or a fragment directory: its header now, weights as they are read."""

class FragmentResult(TypedDict, total=False):
    fragments: int
    bytes: int
    sha256: str
    tensors: int
    info_hash: str
    magnet: str

def fragment(model: str, out_dir: str, *, chunk_size: Union[int, str] = "10M", name: str = "",
             force: bool = False, torrent: bool = True, hybrid: bool = False) -> FragmentResult:
    """Cuts a GGUF file into content-addressed fragments (as `ggswarm fragment`)."""

class VerifyResult(TypedDict):
    files_checked: int
    bytes_checked: int
    whole_file_checked: bool
    selection: str
    not_selected: list[str]

def verify(dir: str, *, threads: int = 0) -> VerifyResult:
    """Checks every fragment; raises CorruptFragmentError (.problems) when any is wrong."""

class ReassembleResult(TypedDict):
    bytes: int
    sha256: str

def reassemble(dir: str, out: str, *, force: bool = False) -> ReassembleResult:
    """Rebuilds the original GGUF file from a fragment directory, checked byte for byte."""
