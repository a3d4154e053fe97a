// The `ggswarm` subcommands that print more than a line or two. Each returns the exit code.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace ggswarm::cli {

int RunInspect(const std::string& path, bool json);
int RunTensor(const std::string& path, const std::string& name, const std::string& rows,
              uint64_t count, const std::string& npy_out, bool force);
void AddInferenceCommands(CLI::App& app, int& rc);  // tokenize, tokenizer, run, chat
void AddBenchCommand(CLI::App& app, int& rc);
void AddServerCommand(CLI::App& app, int& rc);  // server
void AddSwarmCommands(CLI::App& app, int& rc);  // torrent, peer, fetch, store
int Fail(const std::string& message);
const char* VersionText();  // "ggswarm 0.1.0 (commit abcdef012345)", from version.cpp.in // prints
                            // "ggswarm: error: …" and returns 1

}  // namespace ggswarm::cli
