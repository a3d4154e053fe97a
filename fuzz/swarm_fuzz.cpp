// libFuzzer entry point for what the swarm parses from others: .torrent files (libtorrent's
// parser behind ggswarm's limits, then ggswarm's own checks of the file list against a
// manifest), magnet links and info-hashes, and selection.json. Build with -DGGSWARM_FUZZ=ON
// and clang; tests/swarm_fuzz_replay_test.cpp drives it with deterministic mutations in every
// ordinary build.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fragments/selection.h"
#include "net/torrent.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ggswarm;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto t = net::ParseTorrent(bytes, "fuzz.torrent");
  if (t.ok()) {
    const lt::file_storage& files = t->ti->files();
    std::map<lt::file_index_t, std::string> renamed;
    (void)net::FlatFileNames(files, &renamed);
    (void)net::FindFile(files, "manifest.json");
    fragments::Manifest m;
    m.header_size = 100;
    fragments::FragmentEntry f;
    f.file = "a.dat";
    f.size = 16384;
    m.fragments.push_back(f);
    (void)net::CheckTorrentMatchesManifest(files, m);
    (void)net::Summarize(*t->ti);
  }
  (void)net::ParseModelRef("magnet:?" + bytes);
  if (size == 64 || size == 40) (void)net::ParseModelRef(bytes);
  auto sel = fragments::Selection::FromJson(bytes);
  if (sel.ok()) (void)sel->Describe();
  return 0;
}
