// ggswarm: the command-line program. It parses arguments, calls the library and prints;
// the work itself lives in src/.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "base/units.h"
#include "commands.h"
#include "convert/quantize_model.h"
#include "convert/synth.h"
#include "fragments/fragments.h"
#include "model/config.h"
#include "net/torrent.h"
#include "progress_bar.h"

namespace ggswarm::cli {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int RunFragment(const std::string& in, const std::string& out, const std::string& chunk,
                const std::string& name, bool force, bool torrent, net::TorrentOptions to) {
  fragments::FragmentOptions o;
  auto size = ParseByteSize(chunk);
  if (!size || *size == 0) return Fail("--chunk-size " + chunk + ": expected a size like 10M");
  o.chunk_size = *size;
  o.name = name;
  o.force = force;
  const auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("fragment");
  auto r = fragments::FragmentModel(in, out, o, bar.fn());
  bar.Finish();
  if (!r.ok()) return Fail(r.status().ToString());
  const double s = Seconds(t0);
  std::printf("fragmented %s (%.2f MB, %llu tensors) into %s: %zu fragments + %s + %s\n",
              in.c_str(), r->bytes / 1e6, static_cast<unsigned long long>(r->manifest.tensor_count),
              out.c_str(), r->manifest.fragments.size(), fragments::kHeaderFile,
              fragments::kManifestFile);
  std::printf("model sha256 %s, %.2f s, %.0f MB/s\n", r->manifest.sha256.c_str(), s,
              r->bytes / 1e6 / s);
  if (!torrent) return 0;
  to.overwrite = force;
  to.checked = true;  // every fragment was hashed as it was written
  ProgressBar tbar("torrent");
  auto t = net::MakeTorrent(out, to, tbar.fn());
  tbar.Finish();
  if (!t.ok()) return Fail(t.status().ToString());
  std::printf("torrent %s/%s: info-hash %s\n", out.c_str(), net::kTorrentFile,
              t->info_hash.c_str());
  // v1 clients show a hybrid torrent by its v1 hash.
  if (!t->info_hash_v1.empty()) std::printf("info-hash v1 %s\n", t->info_hash_v1.c_str());
  std::printf("magnet %s\n", t->magnet.c_str());
  return 0;
}

int RunVerify(const std::string& dir) {
  const auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("verify");
  auto r = fragments::VerifyDirectory(dir, 0, bar.fn());
  bar.Finish();
  if (!r.ok()) return Fail(r.status().ToString());
  for (const auto& p : r->problems) std::printf("BAD  %s: %s\n", p.file.c_str(), p.what.c_str());
  const double s = Seconds(t0);
  if (!r->ok()) {
    std::printf("%s: %zu problem(s) in %zu fragments\n", dir.c_str(), r->problems.size(),
                r->manifest.fragments.size());
    return 1;
  }
  std::printf(
      "%s: OK — header and %zu fragments (%.2f MB) match manifest.json%s; %.2f s, %.0f MB/s\n",
      dir.c_str(), r->files_checked, r->bytes_checked / 1e6,
      r->whole_file_checked ? ", and rebuild the original's SHA-256" : "", s,
      r->bytes_checked / 1e6 / s);
  if (!r->not_selected.empty()) {
    std::printf("partial copy (%s): %zu fragments (%.2f MB) outside it are absent, as selected\n",
                r->selection.c_str(), r->not_selected.size(), r->not_selected_bytes / 1e6);
  }
  return 0;
}

int RunReassemble(const std::string& dir, const std::string& out, bool force) {
  const auto t0 = std::chrono::steady_clock::now();
  ProgressBar bar("reassemble");
  auto r = fragments::Reassemble(dir, out, force, bar.fn());
  bar.Finish();
  if (!r.ok()) return Fail(r.status().ToString());
  const double s = Seconds(t0);
  std::printf("reassembled %s (%.2f MB), sha256 %s matches the manifest; %.2f s, %.0f MB/s\n",
              out.c_str(), r->bytes / 1e6, r->sha256.c_str(), s, r->bytes / 1e6 / s);
  return 0;
}

}  // namespace
}  // namespace ggswarm::cli

int main(int argc, char** argv) {
  using namespace ggswarm;
  using namespace ggswarm::cli;
  CLI::App app{"ggswarm: GGUF models as content-addressed fragments, for a swarm of peers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText(),
                       "Print the version and the commit it was built from");
  int rc = 0;

  std::string path, name, out, chunk = "10M", rows, npy, type_name = "Q8_0", preset;
  bool json = false, force = false, no_torrent = false;
  net::TorrentOptions frag_torrent;
  std::string vocab, arch;  // default: the preset's
  bool tied_output = false, llama3_rope = false;
  float rope_base = 0;
  uint64_t count = 16, seed = 1;

  auto* inspect = app.add_subcommand("inspect",
                                     "Print a GGUF file's (or fragment directory's) "
                                     "metadata, tensors and sizes");
  inspect->add_option("model", path, "GGUF file or fragment directory")->required();
  inspect->add_flag("--json", json, "Print JSON");
  inspect->callback([&] { rc = RunInspect(path, json); });

  auto* tensor = app.add_subcommand("tensor", "Print (or save as .npy) a dequantized tensor");
  tensor->add_option("model", path, "GGUF file or fragment directory")->required();
  tensor->add_option("name", name, "Tensor name, e.g. token_embd.weight")->required();
  tensor->add_option("--rows", rows, "Row range A:B to print");
  tensor->add_option("--count", count, "How many values to print (default 16)");
  tensor->add_option("--out", npy, "Write the whole tensor as float32 .npy");
  tensor->add_flag("--force", force, "Overwrite --out if it exists");
  tensor->callback([&] { rc = RunTensor(path, name, rows, count, npy, force); });

  auto* frag = app.add_subcommand("fragment", "Cut a GGUF file into fragments + manifest.json");
  frag->add_option("model", path, "GGUF file")->required();
  frag->add_option("out_dir", out, "Output directory (must be empty)")->required();
  frag->add_option("--chunk-size", chunk, "Largest fragment, e.g. 10M (default 10M)");
  frag->add_option("--name", name, "Model name in fragment file names (default: file stem)");
  frag->add_flag("--force", force, "Write into a non-empty directory");
  frag->add_flag("--no-torrent", no_torrent, "Do not write model.torrent");
  frag->add_flag("--hybrid", frag_torrent.hybrid,
                 "model.torrent also with v1 metadata (for libtorrent 1.2 clients)");
  frag->add_flag("--v1", frag_torrent.v1,
                 "model.torrent as v1 only (for Transmission 3, aria2, rtorrent)");
  frag->callback(
      [&] { rc = RunFragment(path, out, chunk, name, force, !no_torrent, frag_torrent); });

  auto* verify = app.add_subcommand("verify", "Check every fragment's presence, size and SHA-256");
  verify->add_option("dir", path, "Fragment directory")->required();
  verify->callback([&] { rc = RunVerify(path); });

  auto* reasm = app.add_subcommand("reassemble", "Rebuild the original GGUF from fragments");
  reasm->add_option("dir", path, "Fragment directory")->required();
  reasm->add_option("out", out, "Output GGUF file")->required();
  reasm->add_flag("--force", force, "Replace the output file if it exists");
  reasm->callback([&] { rc = RunReassemble(path, out, force); });

  ModelShape shape;
  auto* synth = app.add_subcommand("synth", "Make a deterministic random Llama model");
  synth->add_option("out", out, "Output GGUF file")->required();
  synth
      ->add_option(
          "--preset", preset,
          "Shape preset: " +
              [] {
                std::string s;
                for (const auto& n : PresetNames()) s += (s.empty() ? "" : ", ") + n;
                return s;
              }())
      ->required();
  synth->add_option("--n-embd", shape.n_embd, "Override: embedding size");
  synth->add_option("--n-layer", shape.n_layer, "Override: layers");
  synth->add_option("--n-head", shape.n_head, "Override: attention heads");
  synth->add_option("--n-head-kv", shape.n_head_kv, "Override: key/value heads");
  synth->add_option("--n-ff", shape.n_ff, "Override: feed-forward size");
  synth->add_option("--n-vocab", shape.n_vocab, "Override: vocabulary size");
  synth->add_option("--head-dim", shape.head_dim, "Override: head size (key/value_length)");
  synth->add_option("--n-ctx", shape.n_ctx, "Override: context length");
  synth->add_option("--n-expert", shape.n_expert, "Override: experts (moe architectures)");
  synth->add_option("--n-expert-used", shape.n_expert_used, "Override: experts used per token");
  synth->add_option("--n-ff-exp", shape.n_ff_exp, "Override: an expert's feed-forward size");
  synth->add_option("--yarn-factor", shape.yarn_factor, "Override: YaRN rope scaling factor");
  synth->add_option("--yarn-orig-ctx", shape.yarn_orig_ctx,
                    "Override: original context (YaRN's; Phi-3's long/short factors)");
  synth->add_option("--rope-dim", shape.rope_dim, "Override: rotated dimensions per head");
  synth->add_option("--rope-base", rope_base, "Override: rope.freq_base");
  synth->add_option("--rope-scale-linear", shape.linear_factor,
                    "Override: linear rope scaling factor (Gemma 3 4B: 8)");
  synth->add_option("--swa", shape.n_swa, "Override: sliding window of the local layers (Gemma)");
  synth->add_option("--swa-pattern", shape.swa_pattern,
                    "Override: every Nth layer global, the others local (Gemma)");
  synth->add_option("--attn-temp-scale", shape.attn_temp_scale,
                    "Override: attention.temperature_scale (query temperature)");
  synth->add_option("--type", type_name, "Type or mix: " + TypeMixNames() + " (default Q8_0)");
  synth->add_option("--seed", seed, "Random seed (default 1)");
  synth->add_option("--vocab", vocab,
                    "Tokenizer: spm (SentencePiece-style; gemma: Gemma's) or a byte-level BPE "
                    "with pre-tokenizer "
                    "llama3, qwen2, tekken, gpt-2 or gpt-4o (default: the preset's; spm)");
  synth->add_flag("--tied-output", tied_output, "No output.weight: the head reuses token_embd");
  synth->add_flag("--llama3-rope", llama3_rope,
                  "rope_freqs.weight with Llama 3.1's frequency factors");
  synth->add_option("--arch", arch,
                    "Architecture: " + model::ArchNames() +
                        " (default: the preset's, else llama; qwen2 adds q/k/v biases, qwen3 "
                        "per-head q/k norms)");
  synth->add_option("--name", name, "general.name (default ggswarm-synth-PRESET)");
  synth->add_flag("--force", force, "Overwrite the output file");
  synth->callback([&] {
    auto base = FindPreset(preset);
    if (!base) return void(rc = Fail("unknown preset " + preset));
    auto mix = ParseTypeMix(type_name);
    if (!mix)
      return void(rc = Fail("unknown type " + type_name + " (one of " + TypeMixNames() + ")"));
    ModelShape s = *base;
    if (shape.n_embd) s.n_embd = shape.n_embd;
    if (shape.n_layer) s.n_layer = shape.n_layer;
    if (shape.n_head) s.n_head = shape.n_head;
    if (shape.n_head_kv) s.n_head_kv = shape.n_head_kv;
    if (shape.n_ff) s.n_ff = shape.n_ff;
    if (shape.n_vocab) s.n_vocab = shape.n_vocab;
    if (shape.head_dim) s.head_dim = shape.head_dim;
    if (shape.n_ctx != ModelShape{}.n_ctx) s.n_ctx = shape.n_ctx;
    if (shape.n_expert) s.n_expert = shape.n_expert;
    if (shape.n_expert_used) s.n_expert_used = shape.n_expert_used;
    if (shape.n_ff_exp) s.n_ff_exp = shape.n_ff_exp;
    if (shape.yarn_factor) s.yarn_factor = shape.yarn_factor;
    if (shape.yarn_orig_ctx) s.yarn_orig_ctx = shape.yarn_orig_ctx;
    if (shape.rope_dim) s.rope_dim = shape.rope_dim;
    if (shape.attn_temp_scale) s.attn_temp_scale = shape.attn_temp_scale;
    if (rope_base > 0) s.rope_freq_base = rope_base;
    if (shape.linear_factor) s.linear_factor = shape.linear_factor;
    if (shape.n_swa) s.n_swa = shape.n_swa;
    if (shape.swa_pattern) s.swa_pattern = shape.swa_pattern;
    s.tied_output |= tied_output;
    s.llama3_rope |= llama3_rope;
    const PresetKind kind = PresetKindOf(preset);
    if (mix->base == GgmlType::Q8_K) {
      std::fprintf(stderr,
                   "warning: Q8_K is llama.cpp's activation type; llama.cpp cannot "
                   "compute with Q8_K weights\n");
    }
    SynthOptions o{s,
                   *mix,
                   seed,
                   name.empty() ? "ggswarm-synth-" + preset : name,
                   vocab.empty() ? kind.vocab : vocab,
                   arch.empty() ? kind.arch : arch};
    ProgressBar bar("synth");
    auto r = Synthesize(o, out, force, bar.fn());
    bar.Finish();
    if (!r.ok()) return void(rc = Fail(r.status().ToString()));
    for (const auto& n : r->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    std::printf("wrote %s: %s %s, %.3f B parameters, %.2f MB\n", out.c_str(), preset.c_str(),
                mix->name.c_str(), r->n_params / 1e9, r->file_size / 1e6);
  });

  std::string in;
  auto* quant = app.add_subcommand("quantize", "Convert a GGUF model's matrices to another type");
  quant->add_option("in", in, "Input GGUF")->required();
  quant->add_option("out", out, "Output GGUF")->required();
  quant->add_option("type", type_name, "Type or mix: " + TypeMixNames())->required();
  quant->add_flag("--force", force, "Overwrite the output file");
  quant->callback([&] {
    auto mix = ParseTypeMix(type_name);
    if (!mix)
      return void(rc = Fail("unknown type " + type_name + " (one of " + TypeMixNames() + ")"));
    if (mix->base == GgmlType::Q8_K) {
      std::fprintf(stderr,
                   "warning: Q8_K is llama.cpp's activation type; llama.cpp cannot "
                   "compute with Q8_K weights\n");
    }
    ProgressBar bar("quantize");
    auto r = QuantizeModel(in, out, *mix, force, bar.fn());
    bar.Finish();
    if (!r.ok()) return void(rc = Fail(r.status().ToString()));
    for (const auto& n : r->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
    std::printf("wrote %s as %s: %.2f MB -> %.2f MB\n", out.c_str(), mix->name.c_str(),
                r->in_size / 1e6, r->out_size / 1e6);
  });

  AddInferenceCommands(app, rc);
  AddServerCommand(app, rc);
  AddBenchCommand(app, rc);
  AddSwarmCommands(app, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return rc;
}
