// The native half of the Python module (ggswarm._ggswarm): Bridge, load_model and the
// fragment functions over the C++ library. ggswarm/__init__.py defines the exception
// classes, hands them to _set_error_classes, and re-exports everything.
//
// Every call that reads files, maps weights or generates releases the GIL. A generation runs
// on a thread of its own; the caller's thread waits for its pieces and, between them, lets
// Python handle signals, so Ctrl-C stops it (the next call starts afresh).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "api/bridge.h"
#include "api/open_model.h"
#include "base/file.h"
#include "base/thread_pool.h"
#include "base/units.h"
#include "fragments/fragment_source.h"
#include "fragments/fragments.h"
#include "net/torrent.h"
#include "quant/dequantize.h"
#include "tokenizer/tokenizer.h"

namespace py = pybind11;

namespace ggswarm::python {
namespace {

// ---- Errors: a Status becomes the exception class its code (and where it arose) names.

// What an operation worked on, which tells a corrupt fragment from a bad file and a network
// failure from a local one.
enum class Where { kFile, kFragments, kSwarm };

Where WhereOf(const std::string& ref) {
  if (api::IsSwarmReference(ref)) return Where::kSwarm;
  return IsDirectory(ref) ? Where::kFragments : Where::kFile;
}

// Set once by _set_error_classes; never released (the module lives as long as Python).
PyObject* g_errors = nullptr;

py::object ErrorClass(const char* name) {
  if (g_errors) {
    PyObject* c = PyDict_GetItemString(g_errors, name);  // borrowed
    if (c) return py::reinterpret_borrow<py::object>(c);
  }
  return py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
}

const char* ClassName(const Status& s, Where w) {
  using C = Status::Code;
  switch (s.code()) {
    case C::kInvalidArgument:
      return "InvalidArgumentError";
    case C::kNotFound:
      return "NotFoundError";
    case C::kCorruption:
      return w == Where::kFragments ? "CorruptFragmentError" : "BadFileError";
    case C::kIOError:
      return w == Where::kSwarm ? "NetworkError" : "IoError";
    case C::kUnsupported:
      return "UnsupportedError";
    case C::kExists:
      return "ExistsError";
    case C::kUnavailable:
      return "UnavailableError";
    case C::kOk:
      break;
  }
  return "Error";
}

// Raises the exception for `s` (with the GIL held); `problems`, when given, becomes its
// .problems attribute.
[[noreturn]] void Raise(const Status& s, Where w, py::object problems = py::none()) {
  py::object cls = ErrorClass(ClassName(s, w));
  py::object e = cls(s.ToString());
  if (!problems.is_none()) e.attr("problems") = problems;
  PyErr_SetObject(cls.ptr(), e.ptr());
  throw py::error_already_set();
}

template <class T>
T Take(StatusOr<T>&& r, Where w) {
  if (!r.ok()) Raise(r.status(), w);
  return std::move(r.value());
}

// Text from C++ (GGUF strings, token pieces) may hold bytes that are not UTF-8: they become
// U+FFFD rather than an exception.
py::str Text(std::string_view s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

// ---- Bridge: generation, streamed from a thread of its own.

struct BridgeHandle {
  std::unique_ptr<Bridge> bridge;
  std::mutex mu;  // one generation at a time on one engine
  std::string path;
  Where where;
};

struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  bool done = false;
  Status error;
  std::string text;
  std::atomic<bool> stop{false};
};

// One generation: pieces as they come (Python iterates it), or the whole text (generate).
class TextStream {
 public:
  TextStream(std::shared_ptr<BridgeHandle> b, std::string prompt, GenerateParams p)
      : bridge_(std::move(b)), st_(std::make_shared<StreamState>()) {
    worker_ = std::thread([st = st_, b = bridge_, prompt = std::move(prompt), p] {
      Status error;
      std::string text;
      {
        std::lock_guard<std::mutex> busy(b->mu);
        try {
          text = b->bridge->stream(prompt, p, [&](std::string_view piece) {
            {
              std::lock_guard<std::mutex> l(st->mu);
              st->pieces.emplace_back(piece);
            }
            st->cv.notify_one();
            return !st->stop.load();
          });
        } catch (const Error& e) {
          error = e.status();
        } catch (const std::exception& e) {
          error = Status::IOError(e.what());
        }
      }
      {
        std::lock_guard<std::mutex> l(st->mu);
        st->error = error;
        st->text = std::move(text);
        st->done = true;
      }
      st->cv.notify_one();
    });
  }
  ~TextStream() { Close(); }
  TextStream(const TextStream&) = delete;
  TextStream& operator=(const TextStream&) = delete;

  // Stops the generation (at its next token) and waits for its thread.
  void Close() {
    closed_ = true;
    st_->stop = true;
    if (!worker_.joinable()) return;
    if (PyGILState_Check()) {
      py::gil_scoped_release unlocked;
      worker_.join();
    } else {
      worker_.join();
    }
  }

  // The next piece; nullopt at the end or once closed. Called with the GIL held.
  std::optional<std::string> Next() {
    for (;;) {
      if (closed_) return std::nullopt;
      std::optional<std::string> piece;
      bool finished = false;
      {
        py::gil_scoped_release unlocked;
        std::unique_lock<std::mutex> l(st_->mu);
        // Wakes for a piece or the end, and at least every 100 ms to let Python look at
        // its signals (Ctrl-C), which it can only do with the GIL.
        st_->cv.wait_for(l, std::chrono::milliseconds(100),
                         [&] { return !st_->pieces.empty() || st_->done; });
        if (!st_->pieces.empty()) {
          piece = std::move(st_->pieces.front());
          st_->pieces.pop_front();
        } else {
          finished = st_->done;
        }
      }
      if (PyErr_CheckSignals() != 0) {  // a handler raised (KeyboardInterrupt)
        Close();
        throw py::error_already_set();
      }
      if (piece) return piece;
      if (finished) {
        Close();
        if (!st_->error.ok()) Raise(st_->error, bridge_->where);
        return std::nullopt;
      }
    }
  }

  // The whole text, after the last piece.
  const std::string& text() const { return st_->text; }

 private:
  std::shared_ptr<BridgeHandle> bridge_;
  std::shared_ptr<StreamState> st_;
  std::thread worker_;
  bool closed_ = false;
};

GenerateParams Params(int max_tokens, float temperature, int top_k, float top_p, float min_p,
                      float repeat_penalty, std::optional<uint64_t> seed, bool ignore_eos) {
  GenerateParams p;
  p.max_tokens = max_tokens;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repeat_penalty = repeat_penalty;
  p.seed = seed ? *seed : std::random_device{}();  // as `ggswarm run` without --seed
  p.ignore_eos = ignore_eos;
  return p;
}

// ---- Model: a GGUF file or fragment directory opened for reading.

struct TensorInfoPy {
  std::string name, type;
  std::vector<uint64_t> shape;       // NumPy's order: rows first, a row's elements last
  std::vector<uint64_t> ggml_shape;  // GGUF's order: ne[0] first
  uint64_t n_elements = 0, n_bytes = 0, offset = 0;
};

class Model {
 public:
  Model(std::unique_ptr<TensorSource> src, std::string path)
      : src_(std::move(src)), path_(std::move(path)), where_(WhereOf(path_)) {}

  const gguf::GgufFile& header() const { return src_->header(); }
  const std::string& path() const { return path_; }

  py::dict metadata() {
    if (!metadata_) {
      py::dict d;
      for (const gguf::KeyValue& kv : header().metadata) d[Text(kv.key)] = Value(kv.value);
      metadata_ = d;
    }
    return *metadata_;
  }

  std::vector<TensorInfoPy> tensors() const {
    std::vector<TensorInfoPy> v;
    for (const gguf::TensorInfo& t : header().tensors) v.push_back(Info(t));
    return v;
  }

  TensorInfoPy Info(const gguf::TensorInfo& t) const {
    TensorInfoPy i;
    i.name = t.name;
    i.type = TypeName(t.type);
    i.ggml_shape = t.shape;
    i.shape.assign(t.shape.rbegin(), t.shape.rend());
    i.n_elements = t.n_elements;
    i.n_bytes = t.size;
    i.offset = header().data_offset + t.offset;
    return i;
  }

  py::array GetTensor(py::object self, const std::string& name, py::object rows, bool dequantize);

  std::vector<int32_t> Tokenize(const std::string& text, bool add_special, bool parse_special) {
    const tokenizer::Tokenizer& t = Tok();
    py::gil_scoped_release unlocked;
    return t.Encode(text, add_special, parse_special);
  }

  py::str Detokenize(const std::vector<int32_t>& ids, bool remove_special, bool unparse_special) {
    const tokenizer::Tokenizer& t = Tok();
    const size_t n = t.vocab().size();
    for (int32_t id : ids)
      if (id < 0 || static_cast<size_t>(id) >= n)
        Raise(Status::InvalidArgument("token id " + std::to_string(id) +
                                      " is outside the vocabulary (0.." + std::to_string(n - 1) +
                                      ")"),
              where_);
    std::string s;
    {
      py::gil_scoped_release unlocked;
      s = t.Decode(ids, remove_special, unparse_special);
    }
    return Text(s);
  }

 private:
  static py::object Value(const gguf::Value& v) {
    using gguf::ValueType;
    switch (v.type) {
      case ValueType::STRING:
        return Text(v.str);
      case ValueType::BOOL:
        return py::bool_(v.u != 0);
      case ValueType::FLOAT32:
      case ValueType::FLOAT64:
        return py::float_(v.f);
      case ValueType::ARRAY: {
        py::list l;
        if (v.elem_type == ValueType::STRING) {
          for (std::string_view s : v.Strings()) l.append(Text(s));
        } else {
          for (const gguf::Value& it : v.Items()) l.append(Value(it));
        }
        return l;
      }
      default:
        return py::int_(*v.AsInt());
    }
  }

  // Rows of `v` (NumPy `shape`, two dimensions or more) that `rows` selects on the first axis.
  py::array Read(py::object self, const gguf::TensorInfo& t, const TensorView& v,
                 const std::vector<uint64_t>& shape, py::object rows, bool dequantize);

  const tokenizer::Tokenizer& Tok() {
    std::lock_guard<std::mutex> l(mu_);
    if (!tok_) tok_ = Take(tokenizer::Tokenizer::FromGguf(header()), where_);
    return *tok_;
  }

  std::unique_ptr<TensorSource> src_;
  std::string path_;
  Where where_;
  std::optional<py::dict> metadata_;
  std::mutex mu_;
  std::optional<tokenizer::Tokenizer> tok_;
};

// Which indices of the first axis (of length n) `rows` selects, and whether that axis stays
// (a slice, or None: all) or goes (an int), as NumPy's a[rows] would.
struct Selection {
  std::vector<uint64_t> index;
  bool keep_axis = true;
};

Selection Select(py::handle rows, uint64_t n) {
  Selection s;
  if (rows.is_none()) {
    s.index.resize(n);
    for (uint64_t i = 0; i < n; ++i) s.index[i] = i;
  } else if (py::isinstance<py::slice>(rows)) {
    size_t start = 0, stop = 0, step = 0, len = 0;
    if (!py::reinterpret_borrow<py::slice>(rows).compute(n, &start, &stop, &step, &len))
      throw py::error_already_set();
    for (size_t k = 0; k < len; ++k)
      s.index.push_back(static_cast<uint64_t>(static_cast<py::ssize_t>(start) +
                                              static_cast<py::ssize_t>(k * step)));
  } else if (PyIndex_Check(rows.ptr())) {
    const py::ssize_t i = PyNumber_AsSsize_t(rows.ptr(), PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) throw py::error_already_set();
    const py::ssize_t j = i < 0 ? i + static_cast<py::ssize_t>(n) : i;
    if (j < 0 || j >= static_cast<py::ssize_t>(n))
      throw py::index_error("row " + std::to_string(i) + " is out of range for " +
                            std::to_string(n) + " rows");
    s.index.push_back(static_cast<uint64_t>(j));
    s.keep_axis = false;
  } else {
    throw py::type_error("rows must be a slice, an int or None");
  }
  return s;
}

py::array Model::GetTensor(py::object self, const std::string& name, py::object rows,
                           bool dequantize) {
  const gguf::TensorInfo* t = header().FindTensor(name);
  if (!t) Raise(Status::NotFound("no tensor named \"" + name + "\" in " + path_), where_);
  if (dequantize && !Traits(t->type).dequantizable)
    Raise(Status::Unsupported(std::string("cannot dequantize type ") + TypeName(t->type)), where_);
  StatusOr<TensorView> view = Status::NotFound(name);
  {
    py::gil_scoped_release unlocked;
    view = src_->Get(name);  // maps (and checks, for fragments) what holds the tensor
  }
  const TensorView v = Take(std::move(view), where_);
  std::vector<uint64_t> shape(t->shape.rbegin(), t->shape.rend());
  if (shape.size() == 1) {
    // One row: read it whole (as row 0 of a matrix of one row), then index the result as
    // NumPy would.
    shape.insert(shape.begin(), 1);
    py::array whole = Read(self, *t, v, shape, py::int_(0), dequantize);
    return rows.is_none() ? whole : py::array(py::object(whole[rows]));
  }
  return Read(self, *t, v, shape, rows, dequantize);
}

py::array Model::Read(py::object self, const gguf::TensorInfo& ti, const TensorView& v,
                      const std::vector<uint64_t>& shape, py::object rows, bool dequantize) {
  const gguf::TensorInfo* t = &ti;
  const uint64_t ne0 = t->shape[0];
  const uint64_t inner = v.rows() / shape[0];  // GGUF rows under one index of the first axis
  const Selection sel = Select(rows, shape[0]);
  std::vector<py::ssize_t> out_shape;
  if (sel.keep_axis) out_shape.push_back(static_cast<py::ssize_t>(sel.index.size()));
  for (size_t i = 1; i + 1 < shape.size(); ++i) out_shape.push_back(shape[i]);
  const uint64_t n_rows = sel.index.size() * inner;
  auto gguf_row = [&](uint64_t k) { return sel.index[k / inner] * inner + k % inner; };

  if (!dequantize) {
    out_shape.push_back(static_cast<py::ssize_t>(v.row_bytes));
    // Consecutive rows inside one mapping: a read-only view of the mapped bytes, which keeps
    // the model alive.
    bool consecutive = true;
    for (size_t k = 1; k < sel.index.size() && consecutive; ++k)
      consecutive = sel.index[k] == sel.index[k - 1] + 1;
    if (n_rows > 0 && consecutive) {
      const uint64_t first = gguf_row(0), last = gguf_row(n_rows - 1);
      for (const TensorShard& s : v.shards) {
        if (first >= s.row_begin && last < s.row_end) {
          py::array a(py::dtype::of<uint8_t>(), out_shape, {},
                      s.data + (first - s.row_begin) * v.row_bytes, self);
          a.attr("setflags")(py::arg("write") = false);
          return a;
        }
      }
    }
    py::array_t<uint8_t> a(out_shape);
    uint8_t* out = a.mutable_data();
    py::gil_scoped_release unlocked;
    for (uint64_t k = 0; k < n_rows; ++k)
      std::memcpy(out + k * v.row_bytes, v.Row(gguf_row(k)), v.row_bytes);
    return a;
  }

  out_shape.push_back(static_cast<py::ssize_t>(ne0));
  py::array_t<float> a(out_shape);
  float* out = a.mutable_data();
  Status error;
  {
    py::gil_scoped_release unlocked;
    std::mutex mu;
    auto rows_fn = [&](int64_t b, int64_t e, int) {
      for (int64_t k = b; k < e; ++k) {
        Status st = Dequantize(t->type, v.Row(gguf_row(k)), out + k * ne0, ne0);
        if (!st.ok()) {
          std::lock_guard<std::mutex> l(mu);
          if (error.ok()) error = st;
          return;
        }
      }
    };
    // Large tensors on every core; a few rows on this thread alone.
    if (n_rows * ne0 >= (uint64_t{1} << 20)) {
      ThreadPool pool(0);
      pool.Run(static_cast<int64_t>(n_rows), rows_fn, 16);
    } else {
      rows_fn(0, static_cast<int64_t>(n_rows), 0);
    }
  }
  if (!error.ok()) Raise(error.WithContext(t->name), where_);
  return a;
}

py::dict FragmentReportDict(const fragments::FragmentReport& r) {
  py::dict d;
  d["fragments"] = r.manifest.fragments.size();
  d["bytes"] = r.bytes;
  d["sha256"] = r.manifest.sha256;
  d["tensors"] = r.manifest.tensor_count;
  return d;
}

uint64_t ChunkSize(py::handle chunk) {
  if (py::isinstance<py::str>(chunk)) {
    const std::string s = chunk.cast<std::string>();
    auto size = ParseByteSize(s);
    if (!size || *size == 0)
      Raise(Status::InvalidArgument("chunk_size " + s + ": expected a size like 10M"),
            Where::kFile);
    return *size;
  }
  const auto n = chunk.cast<int64_t>();
  if (n <= 0)
    Raise(Status::InvalidArgument("chunk_size " + std::to_string(n) + ": expected a positive size"),
          Where::kFile);
  return static_cast<uint64_t>(n);
}

}  // namespace
}  // namespace ggswarm::python

using namespace ggswarm;
using namespace ggswarm::python;

PYBIND11_MODULE(_ggswarm, m) {
  m.doc() = "The native half of ggswarm; import ggswarm instead.";
  m.attr("__version__") = GGSWARM_VERSION;

  m.def(
      "_set_error_classes",
      [](py::dict classes) {
        Py_XDECREF(g_errors);
        g_errors = classes.release().ptr();
      },
      "Sets the exception classes the native code raises (ggswarm/__init__.py calls it).");

  py::class_<TextStream>(m, "TextStream",
                         "The pieces of one generation, as they are produced (an iterator).")
      .def("__iter__", [](py::object self) { return self; })
      .def(
          "__next__",
          [](TextStream& s) {
            auto piece = s.Next();
            if (!piece) throw py::stop_iteration();
            return Text(*piece);
          },
          "The next piece of text (valid UTF-8); StopIteration at the end.")
      .def("close", &TextStream::Close, "Stops the generation; iterating further ends at once.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](TextStream& s, py::args) { s.Close(); });

  py::class_<BridgeHandle, std::shared_ptr<BridgeHandle>>(
      m, "Bridge",
      "Text generation from a GGUF file, a fragment directory or swarm://HOST:PORT/MODEL.")
      .def(py::init([](const std::string& model, int threads, int ctx, const std::string& token,
                       bool hidden_f16, const std::string& tls_ca,
                       const std::vector<std::string>& dht_bootstrap, double verify_fraction) {
             BridgeOptions o;
             o.threads = threads;
             o.n_ctx = ctx;
             o.token = token;
             o.f16_hidden = hidden_f16;
             o.tls_ca = tls_ca;
             o.dht_bootstrap = dht_bootstrap;
             if (!(verify_fraction >= 0 && verify_fraction <= 1))
               throw py::value_error("verify_fraction is a fraction of steps, 0 to 1");
             o.verify_fraction = verify_fraction;
             StatusOr<std::unique_ptr<Bridge>> b = Status::NotFound(model);
             {
               py::gil_scoped_release unlocked;
               b = Bridge::Open(model, o);
             }
             auto h = std::make_shared<BridgeHandle>();
             h->where = WhereOf(model);
             h->bridge = Take(std::move(b), h->where);
             h->path = model;
             return h;
           }),
           py::arg("model"), py::arg("threads") = 0, py::arg("ctx") = 0, py::arg("token") = "",
           py::arg("hidden_f16") = false, py::arg("tls_ca") = "",
           py::arg("dht_bootstrap") = std::vector<std::string>{}, py::arg("verify_fraction") = 0.0,
           "Opens `model`: a GGUF file, a fragment directory, swarm://HOST:PORT/MODEL or\n"
           "dht://MODEL_ID. threads: compute threads (0: one per core); ctx: context size (0:\n"
           "the model's, at most 4096); token: the stages' --token; hidden_f16: hidden states\n"
           "as f16 between stages; tls_ca: the stages' CA certificate (PEM file) when they\n"
           "use TLS; dht_bootstrap: DHT nodes (HOST:PORT) to find dht:// stages through;\n"
           "verify_fraction: steps also computed on other stages, a disagreeing stage banned.")
      .def(
          "generate",
          [](std::shared_ptr<BridgeHandle> self, const std::string& prompt, int max_tokens,
             float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
             std::optional<uint64_t> seed, bool ignore_eos) {
            TextStream s(self, prompt,
                         Params(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed,
                                ignore_eos));
            while (s.Next()) {
            }
            return Text(s.text());
          },
          py::arg("prompt"), py::arg("max_tokens") = 128, py::arg("temperature") = 0.8f,
          py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
          py::arg("repeat_penalty") = 1.1f, py::arg("seed") = py::none(),
          py::arg("ignore_eos") = false,
          "The text that follows `prompt`, as `ggswarm run` prints it with the same sampling\n"
          "and seed (seed None: a random one). temperature 0 is greedy; max_tokens -1 runs to\n"
          "the end of generation or a full context. Each call starts from an empty context.")
      .def(
          "stream",
          [](std::shared_ptr<BridgeHandle> self, const std::string& prompt, int max_tokens,
             float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
             std::optional<uint64_t> seed, bool ignore_eos) {
            return std::make_unique<TextStream>(self, prompt,
                                                Params(max_tokens, temperature, top_k, top_p, min_p,
                                                       repeat_penalty, seed, ignore_eos));
          },
          py::arg("prompt"), py::arg("max_tokens") = 128, py::arg("temperature") = 0.8f,
          py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
          py::arg("repeat_penalty") = 1.1f, py::arg("seed") = py::none(),
          py::arg("ignore_eos") = false,
          "The same generation as generate(), as an iterator of text pieces; the pieces join\n"
          "to generate()'s text. Closing it (or dropping it) stops the generation.")
      .def_property_readonly(
          "n_ctx", [](BridgeHandle& b) { return b.bridge->evaluator().n_ctx(); },
          "The context size in tokens.")
      .def_property_readonly(
          "model", [](BridgeHandle& b) { return b.path; }, "What was opened.")
      .def("__repr__", [](BridgeHandle& b) { return "<ggswarm.Bridge " + b.path + ">"; });

  py::class_<TensorInfoPy>(m, "TensorInfo", "A tensor's name, type and shape, from the header.")
      .def_readonly("name", &TensorInfoPy::name)
      .def_readonly("type", &TensorInfoPy::type, "The ggml type's name: F32, Q8_0, Q4_K…")
      .def_property_readonly(
          "shape", [](const TensorInfoPy& t) { return py::tuple(py::cast(t.shape)); },
          "NumPy's order (rows first), the shape get_tensor() returns.")
      .def_property_readonly(
          "ggml_shape", [](const TensorInfoPy& t) { return py::tuple(py::cast(t.ggml_shape)); },
          "GGUF's order (ne[0], a row's length, first).")
      .def_readonly("n_elements", &TensorInfoPy::n_elements)
      .def_readonly("n_bytes", &TensorInfoPy::n_bytes, "Bytes in the file.")
      .def_readonly("offset", &TensorInfoPy::offset, "Where its bytes start in the GGUF file.")
      .def("__repr__", [](const TensorInfoPy& t) {
        std::string s = "<TensorInfo " + t.name + " " + t.type + " (";
        for (size_t i = 0; i < t.shape.size(); ++i)
          s += (i ? ", " : "") + std::to_string(t.shape[i]);
        return s + (t.shape.size() == 1 ? ",)>" : ")>");
      });

  py::class_<Model>(m, "Model", "A GGUF file or fragment directory, opened for reading.")
      .def_property_readonly("path", &Model::path)
      .def_property_readonly("metadata", &Model::metadata,
                             "The header's key/values: str, int, float, bool, or lists of them.")
      .def_property_readonly("tensors", &Model::tensors,
                             "Every tensor's TensorInfo, in file order.")
      .def_property_readonly(
          "architecture", [](Model& mo) { return mo.header().Architecture(); },
          "general.architecture")
      .def(
          "get_tensor",
          [](py::object self, const std::string& name, py::object rows, bool dequantize) {
            return self.cast<Model&>().GetTensor(self, name, rows, dequantize);
          },
          py::arg("name"), py::kw_only(), py::arg("rows") = py::none(),
          py::arg("dequantize") = true,
          "The tensor as a NumPy array in NumPy's order (rows first).\n"
          "dequantize=True: float32 values, as `ggswarm tensor --out` writes them.\n"
          "dequantize=False: the raw bytes (uint8, a row's bytes last), a read-only view of\n"
          "the mapped file where the rows lie together, a copy otherwise.\n"
          "rows: a slice or int over the first axis, as get_tensor(name)[rows] but reading\n"
          "and dequantizing only those rows.")
      .def("tokenize", &Model::Tokenize, py::arg("text"), py::arg("add_special") = true,
           py::arg("parse_special") = true,
           "Token ids of `text` (BOS as the vocabulary asks, with add_special; control-token\n"
           "text such as \"<s>\" becomes those tokens, with parse_special).")
      .def("detokenize", &Model::Detokenize, py::arg("ids"), py::arg("remove_special") = false,
           py::arg("unparse_special") = false, "The text of token ids.")
      .def("__repr__", [](Model& mo) {
        return "<ggswarm.Model " + mo.path() + ": " + mo.header().Architecture() + ", " +
               std::to_string(mo.header().tensors.size()) + " tensors>";
      });

  m.def(
      "load_model",
      [](const std::string& path) {
        StatusOr<std::unique_ptr<TensorSource>> src = Status::NotFound(path);
        {
          py::gil_scoped_release unlocked;
          src = fragments::OpenModel(path);
        }
        return std::make_unique<Model>(Take(std::move(src), WhereOf(path)), path);
      },
      py::arg("path"),
      "Opens a GGUF file or a fragment directory: its header now, weights as they are read.");

  m.def(
      "fragment",
      [](const std::string& model, const std::string& out_dir, py::object chunk_size,
         const std::string& name, bool force, bool torrent, bool hybrid) {
        fragments::FragmentOptions o;
        o.chunk_size = ChunkSize(chunk_size);
        o.name = name;
        o.force = force;
        StatusOr<fragments::FragmentReport> r = Status::NotFound(model);
        StatusOr<net::TorrentSummary> t = Status::NotFound(out_dir);
        {
          py::gil_scoped_release unlocked;
          r = fragments::FragmentModel(model, out_dir, o);
          if (r.ok() && torrent) {
            net::TorrentOptions to;
            to.hybrid = hybrid;
            to.overwrite = force;
            to.checked = true;  // every fragment was hashed as it was written
            t = net::MakeTorrent(out_dir, to);
          }
        }
        py::dict d = FragmentReportDict(Take(std::move(r), Where::kFile));
        if (torrent) {
          const net::TorrentSummary info = Take(std::move(t), Where::kFragments);
          d["info_hash"] = info.info_hash;
          d["magnet"] = info.magnet;
        }
        return d;
      },
      py::arg("model"), py::arg("out_dir"), py::kw_only(), py::arg("chunk_size") = "10M",
      py::arg("name") = "", py::arg("force") = false, py::arg("torrent") = true,
      py::arg("hybrid") = false,
      "Cuts a GGUF file into content-addressed fragments in out_dir (as `ggswarm fragment`):\n"
      "returns {fragments, bytes, sha256, tensors[, info_hash, magnet]}.");

  m.def(
      "verify",
      [](const std::string& dir, int threads) {
        StatusOr<fragments::VerifyReport> r = Status::NotFound(dir);
        {
          py::gil_scoped_release unlocked;
          r = fragments::VerifyDirectory(dir, threads);
        }
        const fragments::VerifyReport rep = Take(std::move(r), Where::kFragments);
        if (!rep.ok()) {
          py::list problems;
          std::string msg = dir + ": " + std::to_string(rep.problems.size()) + " problem(s) in " +
                            std::to_string(rep.manifest.fragments.size()) + " fragments:";
          for (const auto& p : rep.problems) {
            problems.append(py::make_tuple(p.file, p.what));
            msg += " " + p.file + ": " + p.what + ";";
          }
          msg.pop_back();
          Raise(Status::Corruption(msg), Where::kFragments, problems);
        }
        py::dict d;
        d["files_checked"] = rep.files_checked;
        d["bytes_checked"] = rep.bytes_checked;
        d["whole_file_checked"] = rep.whole_file_checked;
        d["selection"] = rep.selection;
        d["not_selected"] = rep.not_selected;
        return d;
      },
      py::arg("dir"), py::kw_only(), py::arg("threads") = 0,
      "Checks every fragment's presence, size and SHA-256 (as `ggswarm verify`); raises\n"
      "CorruptFragmentError (with .problems: [(file, what)]) when any is wrong.");

  m.def(
      "reassemble",
      [](const std::string& dir, const std::string& out, bool force) {
        StatusOr<fragments::ReassembleReport> r = Status::NotFound(dir);
        {
          py::gil_scoped_release unlocked;
          r = fragments::Reassemble(dir, out, force);
        }
        const fragments::ReassembleReport rep = Take(std::move(r), Where::kFragments);
        py::dict d;
        d["bytes"] = rep.bytes;
        d["sha256"] = rep.sha256;
        return d;
      },
      py::arg("dir"), py::arg("out"), py::kw_only(), py::arg("force") = false,
      "Rebuilds the original GGUF file at `out` from a fragment directory, checking every\n"
      "fragment and the whole file's SHA-256; the file appears only when it is right.");
}
