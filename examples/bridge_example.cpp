// Generates text with the ggswarm library, the way the Python prototype's bridge did:
//   bridge_example MODEL_OR_FRAGMENT_DIR_OR_SWARM_URI [PROMPT] [MAX_TOKENS]
// Streams a greedy continuation, then prints the returned text once more on its own line.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "api/bridge.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_OR_FRAGMENT_DIR [PROMPT] [MAX_TOKENS]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
  const int max_tokens = argc > 3 ? std::atoi(argv[3]) : 32;
  try {
    ggswarm::Bridge bridge(argv[1]);
    const std::string text = bridge.generate(prompt, {.max_tokens = max_tokens, .temperature = 0},
                                             [](std::string_view piece) {
                                               std::fwrite(piece.data(), 1, piece.size(), stdout);
                                               std::fflush(stdout);
                                             });
    std::printf("\n--\n%s%s\n", prompt.c_str(), text.c_str());
  } catch (const ggswarm::Error& e) {
    std::fprintf(stderr, "bridge_example: %s\n", e.what());
    return 1;
  }
  return 0;
}
