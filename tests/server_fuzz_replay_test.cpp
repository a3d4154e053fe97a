// Drives the server's fuzz entry point (fuzz/server_fuzz.cpp) with deterministic mutations
// of valid requests to each endpoint; the entry point aborts when an invariant breaks.
#include <gtest/gtest.h>

#include <string>

#include "mutate.h"

namespace {

std::vector<uint8_t> Seed(uint8_t endpoint, const std::string& body) {
  std::vector<uint8_t> b = {endpoint};
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

TEST(ServerFuzzReplay, MutatedRequests) {
  const std::pair<uint8_t, std::string> seeds[] = {
      {0,
       R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0.5,"top_k":5,"stop":["a"],"logprobs":true,"top_logprobs":2})"},
      {0,
       R"({"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})"},
      {1,
       R"({"prompt":"Hello","max_tokens":5,"seed":7,"min_p":0.1,"repeat_penalty":1.2,"logprobs":3})"},
      {1, R"({"prompt":["Hello"],"max_completion_tokens":2,"stream":true,"ignore_eos":true})"},
      {2, R"({"content":"Hello world","add_special":true})"},
      {3, R"({"tokens":[1,5,9,200]})"},
  };
  uint32_t rng = 1;
  for (const auto& [endpoint, body] : seeds) {
    const std::vector<uint8_t> seed = Seed(endpoint, body);
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ggswarm::testing::Mutate(seed, 150, rng++);
  }
}

}  // namespace
