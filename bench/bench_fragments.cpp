// Throughput of fragment, verify and reassemble on a TinyLlama-1.1B-shaped Q8_0 model
// (about 1.17 GB), from a warm page cache. Prints MB/s (1 MB = 10^6 bytes), best of N runs.
//   bench_fragments [--work DIR] [--model M.gguf] [--runs 3] [--chunk-size BYTES]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/file.h"
#include "convert/synth.h"
#include "fragments/fragments.h"

namespace fs = std::filesystem;
using namespace ggswarm;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Reads a file once so that the runs measure a warm page cache.
void Warm(const std::string& path) {
  auto in = InputFile::Open(path);
  if (!in.ok()) return;
  std::vector<uint8_t> buf(8 << 20);
  for (uint64_t off = 0; off < in->size(); off += buf.size()) {
    const size_t n = std::min<uint64_t>(buf.size(), in->size() - off);
    (void)in->ReadAt(off, {buf.data(), n});
  }
}

int Die(const Status& st) {
  std::fprintf(stderr, "bench_fragments: %s\n", st.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string work = "out/bench", model;
  int runs = 3;
  uint64_t chunk = fragments::kDefaultChunkSize;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--work"))
      work = argv[i + 1];
    else if (!std::strcmp(argv[i], "--model"))
      model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--runs"))
      runs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--chunk-size"))
      chunk = std::stoull(argv[i + 1]);
  }
  fs::create_directories(work);
  if (model.empty()) {
    model = work + "/tinyllama-1.1b.Q8_0.gguf";
    if (!fs::exists(model)) {
      SynthOptions o{*FindPreset("tinyllama-1.1b"), *ParseTypeMix("Q8_0"), 1, "tinyllama"};
      const double t0 = Now();
      auto r = Synthesize(o, model, false);
      if (!r.ok()) return Die(r.status());
      std::printf("synth     %8.1f MB in %6.2f s  %7.0f MB/s\n", r->file_size / 1e6, Now() - t0,
                  r->file_size / 1e6 / (Now() - t0));
    }
  }
  Warm(model);
  const double mb = fs::file_size(model) / 1e6;
  const std::string dir = work + "/fragments", out = work + "/reassembled.gguf";
  double best_frag = 1e9, best_verify = 1e9, best_reasm = 1e9;
  size_t n_frags = 0;
  for (int r = 0; r < runs; ++r) {
    fs::remove_all(dir);
    fs::remove(out);
    fragments::FragmentOptions o;
    o.chunk_size = chunk;
    double t0 = Now();
    auto f = fragments::FragmentModel(model, dir, o);
    if (!f.ok()) return Die(f.status());
    best_frag = std::min(best_frag, Now() - t0);
    n_frags = f->manifest.fragments.size();
    t0 = Now();
    auto v = fragments::VerifyDirectory(dir);
    if (!v.ok()) return Die(v.status());
    if (!v->ok()) return Die(Status::Corruption("verify found problems"));
    best_verify = std::min(best_verify, Now() - t0);
    t0 = Now();
    auto re = fragments::Reassemble(dir, out, false);
    if (!re.ok()) return Die(re.status());
    best_reasm = std::min(best_reasm, Now() - t0);
  }
  std::printf("model     %s, %.1f MB, %zu fragments (chunk %llu bytes), best of %d runs\n",
              model.c_str(), mb, n_frags, static_cast<unsigned long long>(chunk), runs);
  std::printf("fragment  %6.3f s  %7.0f MB/s\n", best_frag, mb / best_frag);
  std::printf("verify    %6.3f s  %7.0f MB/s\n", best_verify, mb / best_verify);
  std::printf("reassemble%6.3f s  %7.0f MB/s\n", best_reasm, mb / best_reasm);
  return 0;
}
