// Drives the swarm's fuzz entry point (fuzz/swarm_fuzz.cpp) with thousands of deterministic
// mutations of a real model.torrent and selection.json: none may crash or hang.
#include <gtest/gtest.h>

#include <cstring>

#include "convert/synth.h"
#include "convert/type_plan.h"
#include "fragments/fragments.h"
#include "fragments/selection.h"
#include "mutate.h"
#include "net/torrent.h"
#include "test_util.h"

namespace {

using ggswarm::testing::Mutate;
using ggswarm::testing::ReadBytes;

TEST(SwarmFuzzReplay, MutatedTorrents) {
  ggswarm::testing::TempDir dir;
  ggswarm::SynthOptions o{*ggswarm::FindPreset("micro"), *ggswarm::ParseTypeMix("Q8_0"), 1, "fuzz",
                          "spm"};
  ASSERT_TRUE(ggswarm::Synthesize(o, dir / "m.gguf", false).ok());
  ggswarm::fragments::FragmentOptions fo;
  fo.chunk_size = 16 << 10;
  ASSERT_TRUE(ggswarm::fragments::FragmentModel(dir / "m.gguf", dir / "f", fo).ok());
  for (bool hybrid : {false, true}) {
    ggswarm::net::TorrentOptions to;
    to.hybrid = hybrid;
    to.overwrite = true;
    ASSERT_TRUE(ggswarm::net::MakeTorrent(dir / "f", to).ok());
    const auto bytes = ReadBytes(dir / "f/model.torrent");
    // The unmutated torrent goes through every check, too.
    ASSERT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
    Mutate(bytes, 1500, hybrid ? 7 : 5);
  }
}

TEST(SwarmFuzzReplay, MutatedSelectionsAndReferences) {
  auto s = ggswarm::fragments::Selection::Parse("2-9", true, true);
  ASSERT_TRUE(s.ok());
  const std::string text = s->ToJson().dump();
  Mutate(std::vector<uint8_t>(text.begin(), text.end()), 2000, 11);
  const std::string magnet = "xt=urn:btmh:1220" + std::string(64, 'a') + "&dn=x&tr=udp://t:1";
  Mutate(std::vector<uint8_t>(magnet.begin(), magnet.end()), 2000, 12);
  for (size_t n = 0; n < 70; ++n) {
    std::vector<uint8_t> b(n, 'f');
    LLVMFuzzerTestOneInput(b.data(), b.size());
  }
}

}  // namespace
