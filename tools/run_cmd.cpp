// ggswarm tokenize / run: text in, tokens or text out.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/open_model.h"
#include "base/file.h"
#include "base/text.h"
#include "commands.h"
#include "fragments/fragment_source.h"
#include "numeric_flags.h"
#include "runtime/chat.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/limits.h"
#include "swarm_flags.h"
#include "tokenizer/spm_export.h"

namespace ggswarm::cli {
namespace {

struct RunArgs {
  std::string model, prompt, dump_logits, system, chat_template;
  int n = 128, threads = 0, ctx = 0, top_k = 40;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.1f;
  float frequency_penalty = 0, presence_penalty = 0;
  uint64_t seed = 0;
  bool seed_set = false, ignore_eos = false, json = false, chat = false, force = false;
  SwarmClientFlags swarm;
  bool hidden_f16 = false;
};

int RunTokenize(const std::string& path, const std::string& text, bool json, bool no_special) {
  auto src = fragments::OpenModel(path);
  if (!src.ok()) return Fail(src.status().ToString());
  auto tok = tokenizer::Tokenizer::FromGguf((*src)->header());
  if (!tok.ok()) return Fail(path + ": " + tok.status().ToString());
  const auto ids = tok->Encode(text, true, !no_special);
  if (json) {
    std::printf("%s\n", JsonText(nlohmann::json(ids)).c_str());
    return 0;
  }
  for (int32_t id : ids) {
    const std::string& raw = tok->vocab().text[id];
    std::printf("%6d  %s\n", id, JsonText(nlohmann::json(raw)).c_str());
  }
  std::printf("%zu tokens\n", ids.size());
  return 0;
}

Status WriteTextFile(const std::string& path, const std::string& text, bool force) {
  auto f = OutputFile::Create(path, force);
  if (!f.ok()) return f.status();
  GGSWARM_RETURN_IF_ERROR(f->Write({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return f->Commit();
}

int RunExportTokenizer(const std::string& path, const std::string& out, bool force) {
  auto src = fragments::OpenModel(path);
  if (!src.ok()) return Fail(src.status().ToString());
  auto v = tokenizer::Vocab::FromGguf((*src)->header());
  if (!v.ok()) return Fail(path + ": " + v.status().ToString());
  auto bytes = tokenizer::SentencePieceModel(*v);
  if (!bytes.ok()) return Fail(path + ": " + bytes.status().ToString());
  Status st = WriteTextFile(out, *bytes, force);
  if (!st.ok()) return Fail(st.ToString());
  std::printf("wrote %s: SentencePiece model of %zu pieces (%zu bytes)\n", out.c_str(), v->size(),
              bytes->size());
  return 0;
}

runtime::SamplerOptions Sampling(const RunArgs& a) {
  runtime::SamplerOptions s;
  s.temperature = a.temp;
  s.top_k = a.top_k;
  s.top_p = a.top_p;
  s.min_p = a.min_p;
  s.repeat_penalty = a.repeat_penalty;
  s.frequency_penalty = a.frequency_penalty;
  s.presence_penalty = a.presence_penalty;
  s.seed = a.seed_set ? a.seed : std::random_device{}();
  return s;
}

StatusOr<api::OpenedModel> OpenModel(const RunArgs& a) {
  api::OpenOptions o;
  o.threads = a.threads;
  o.n_ctx = a.ctx;
  a.swarm.ApplyTo(&o);
  o.f16_hidden = a.hidden_f16;
  o.log = [](const std::string& s) { std::fprintf(stderr, "swarm: %s\n", s.c_str()); };
  return api::OpenModel(a.model, o);
}

int RunGenerate(const RunArgs& a) {
  if (!a.dump_logits.empty() && PathExists(a.dump_logits) && !a.force)
    return Fail(a.dump_logits + " exists (use --force to replace it)");
  auto model = OpenModel(a);
  if (!model.ok()) return Fail(model.status().ToString());
  runtime::Evaluator& e = *model->eval;
  std::string prompt = a.prompt;
  if (a.chat) {
    auto fmt = runtime::ChatFormatFor(*model->header, a.chat_template);
    if (!fmt.ok()) return Fail(fmt.status().ToString());
    prompt = runtime::RenderFirstTurn(*fmt, a.system, a.prompt);
  }
  const std::vector<int32_t> tokens = e.tokenizer().Encode(prompt);
  runtime::GenerateOptions go;
  go.max_tokens = a.n;
  go.ignore_eos = a.ignore_eos;
  go.sampling = Sampling(a);
  auto r = runtime::Generate(e, tokens, go, [&](const std::string& text, int32_t) {
    if (!a.json) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  if (!r.ok()) {
    if (!a.json) std::printf("\n");
    return Fail(r.status().ToString());
  }
  if (!a.dump_logits.empty()) {
    const std::string s = nlohmann::json(r->prompt_logits).dump();
    Status st = WriteTextFile(a.dump_logits, s, a.force);
    if (!st.ok()) return Fail(st.ToString());
  }
  const double tg = r->tokens.size() > 1 ? (r->tokens.size() - 1) * 1000.0 / r->gen_ms : 0;
  if (a.json) {
    nlohmann::json j = {{"prompt_tokens", r->prompt_tokens},
                        {"generated_tokens", r->tokens},
                        {"text", r->text},
                        {"stop", runtime::StopReasonName(r->stop)},
                        {"timings",
                         {{"prompt_ms", r->prompt_ms},
                          {"prompt_tokens_per_s", r->prompt_tokens.size() * 1000.0 / r->prompt_ms},
                          {"generation_ms", r->gen_ms},
                          {"generation_tokens_per_s", tg}}}};
    std::printf("%s\n", JsonText(j, 1).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    if (r->stop == runtime::StopReason::kContextFull)
      std::fprintf(stderr, "ggswarm: stopped: the context of %d tokens is full (raise --ctx)\n",
                   e.n_ctx());
    std::fprintf(stderr, "prompt: %zu tokens, %.1f tok/s; generated: %zu tokens, %.1f tok/s\n",
                 r->prompt_tokens.size(), r->prompt_tokens.size() * 1000.0 / r->prompt_ms,
                 r->tokens.size(), tg);
  }
  return 0;
}

// An interactive conversation on stdin/stdout; the KV cache carries over between turns, so
// each turn only evaluates its own new tokens.
int RunChat(const RunArgs& a) {
  auto model = OpenModel(a);
  if (!model.ok()) return Fail(model.status().ToString());
  runtime::Evaluator& e = *model->eval;
  auto fmt = runtime::ChatFormatFor(*model->header, a.chat_template);
  if (!fmt.ok()) return Fail(fmt.status().ToString());
  const bool tty = isatty(0) && isatty(1);
  if (tty)
    std::fprintf(stderr, "chat with %s (%s format); an empty line or end of input ends it\n",
                 a.model.c_str(), fmt->name.c_str());
  runtime::GenerateOptions go;
  go.max_tokens = a.n;
  go.sampling = Sampling(a);
  std::vector<int32_t> unevaluated;  // the reply's last token, not yet in the cache
  bool first = true;
  std::string line;
  for (;;) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    int c;
    line.clear();
    while ((c = std::fgetc(stdin)) != EOF && c != '\n') line += static_cast<char>(c);
    if (line.empty() && (c == EOF || tty)) break;
    if (line.empty()) continue;
    const std::string text = first ? runtime::RenderFirstTurn(*fmt, a.system, line)
                                   : runtime::RenderNextTurn(*fmt, line);
    std::vector<int32_t> tokens = unevaluated;
    const auto more = e.tokenizer().Encode(text, first, true);
    tokens.insert(tokens.end(), more.begin(), more.end());
    first = false;
    auto r = runtime::Generate(e, tokens, go, [&](const std::string& piece, int32_t) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    std::printf("\n");
    if (!r.ok()) return Fail(r.status().ToString());
    unevaluated.clear();
    if (r->stop != runtime::StopReason::kEndOfGeneration && !r->tokens.empty())
      unevaluated.push_back(r->tokens.back());
    if (r->stop == runtime::StopReason::kContextFull)
      return Fail("the context of " + std::to_string(e.n_ctx()) + " tokens is full (raise --ctx)");
  }
  return 0;
}

void AddSamplingFlags(CLI::App* c, RunArgs& a) {
  c->add_option("-t,--threads", a.threads, "Threads (default: all cores)")
      ->check(Within(runtime::kThreads));
  c->add_option("--ctx", a.ctx, "Context size (default: model's, at most 4096)")
      ->check(Within(runtime::kContext));
  c->add_option("--temp", a.temp,
                "Temperature; 0 is greedy (the argmax, after the frequency and presence "
                "penalties only)")
      ->check(Within(runtime::kTemperature));
  c->add_option("--top-k", a.top_k, "Top-k (default 40; 0 off)")->check(Within(runtime::kTopK));
  c->add_option("--top-p", a.top_p, "Top-p (default 0.95; 1 off)")->check(Within(runtime::kTopP));
  c->add_option("--min-p", a.min_p, "Min-p (default 0.05; 0 off)")->check(Within(runtime::kMinP));
  c->add_option("--repeat-penalty", a.repeat_penalty,
                "Repetition penalty over the last 64 tokens (default 1.1; 1 off)")
      ->check(Within(runtime::kRepeatPenalty));
  c->add_option("--frequency-penalty", a.frequency_penalty,
                "Less this times a token's count in the last 64 tokens (default 0; -2 to 2)")
      ->check(Within(runtime::kFrequencyPenalty));
  c->add_option("--presence-penalty", a.presence_penalty,
                "Less this for a token in the last 64 tokens (default 0; -2 to 2)")
      ->check(Within(runtime::kPresencePenalty));
  c->add_option("--seed", a.seed, "Random seed (default: random)")->each([&](const std::string&) {
    a.seed_set = true;
  });
  c->add_option("--system", a.system, "System prompt (chat)");
  c->add_option(
      "--chat-template", a.chat_template,
      "Chat format when the model has none or to override it: " + runtime::ChatFormatNames());
}

}  // namespace

void AddInferenceCommands(CLI::App& app, int& rc) {
  // The options' values live as long as the callbacks that read them.
  struct TokenizeArgs {
    std::string path, text, out;
    bool json = false, no_special = false, force = false;
  };
  auto t = std::make_shared<TokenizeArgs>();
  auto* tk = app.add_subcommand("tokenize", "Print the token ids of a text");
  tk->add_option("model", t->path, "GGUF file or fragment directory")->required();
  tk->add_option("text", t->text, "Text to tokenize")->required();
  tk->add_flag("--json", t->json, "Print a JSON array of ids");
  tk->add_flag("--no-parse-special", t->no_special, "Treat control-token text as plain text");
  tk->callback([t, &rc] { rc = RunTokenize(t->path, t->text, t->json, t->no_special); });

  auto* tm =
      app.add_subcommand("tokenizer", "Write the vocabulary as a SentencePiece tokenizer.model");
  tm->add_option("model", t->path, "GGUF file or fragment directory")->required();
  tm->add_option("out", t->out, "Output file, e.g. tokenizer.model")->required();
  tm->add_flag("--force", t->force, "Replace the output file");
  tm->callback([t, &rc] { rc = RunExportTokenizer(t->path, t->out, t->force); });

  auto a = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Generate text from a prompt");
  run->add_option("model", a->model, "GGUF file, fragment directory or swarm://HOST:PORT/MODEL")
      ->required();
  AddSwarmClientFlags(run, &a->swarm);
  run->add_flag("--hidden-f16", a->hidden_f16,
                "swarm://: send hidden states between stages as f16 (half the bytes)");
  run->add_option("-p,--prompt", a->prompt, "Prompt")->required();
  run->add_option("-n,--n-predict", a->n, "Tokens to generate (default 128; -1: until the end)")
      ->check(Within(runtime::kMaxTokens));
  AddSamplingFlags(run, *a);
  run->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-generation tokens");
  run->add_flag("--json", a->json, "Print one JSON object at the end instead of streaming");
  run->add_option("--dump-logits", a->dump_logits,
                  "Write the last prompt position's logits (JSON)");
  run->add_flag("--force", a->force, "Replace the --dump-logits file");
  run->add_flag("--chat", a->chat, "Format the prompt with the model's chat template");
  run->callback([a, &rc] { rc = RunGenerate(*a); });

  auto* chat = app.add_subcommand("chat", "Talk with a model (its chat template, one cache)");
  chat->add_option("model", a->model, "GGUF file, fragment directory or swarm://HOST:PORT/MODEL")
      ->required();
  AddSwarmClientFlags(chat, &a->swarm, /*push_flag=*/false);
  chat->add_option("-n,--n-predict", a->n, "Longest reply in tokens (default 128; -1: no limit)")
      ->check(Within(runtime::kMaxTokens));
  AddSamplingFlags(chat, *a);
  chat->callback([a, &rc] { rc = RunChat(*a); });
}

}  // namespace ggswarm::cli
