#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "base/file.h"
#include "base/sha256.h"
#include "fragments/fragments.h"

namespace ggswarm::fragments {
namespace {

constexpr size_t kChunk = 4u << 20;
constexpr size_t kQueueDepth = 4;  // chunks in flight between the reader and the writer

// A chunk read and hashed by the reader thread, waiting for the writer.
struct Chunk {
  uint64_t offset = 0;  // where it goes in the output
  std::vector<uint8_t> bytes;
};

}  // namespace

StatusOr<ReassembleReport> Reassemble(const std::string& dir, const std::string& out_path,
                                      bool overwrite, const ProgressFn& progress) {
  auto m_or = Manifest::Load(dir);
  if (!m_or.ok()) return m_or.status();
  const Manifest& m = *m_or;
  std::string header_bytes;
  auto header = LoadHeader(dir, m, &header_bytes);
  if (!header.ok()) return header.status();
  auto out = OutputFile::Create(out_path, overwrite);
  if (!out.ok()) return out.status();

  // Two threads: this one writes and hashes the whole output; the reader reads each fragment
  // and checks its own SHA-256. Both hashes run at once, on both cores.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Chunk> queue;
  bool reader_done = false, writer_failed = false;
  Status reader_status;

  std::thread reader([&] {
    Status st;
    for (const FragmentEntry& f : m.fragments) {
      auto in = InputFile::Open(dir + "/" + f.file);
      if (!in.ok()) {
        st = Status::Corruption("fragment " + f.file + ": " + in.status().message());
        break;
      }
      if (in->size() != f.size) {
        st = Status::Corruption("fragment " + f.file + " is " + std::to_string(in->size()) +
                                " bytes, expected " + std::to_string(f.size));
        break;
      }
      Sha256 h;
      for (uint64_t done = 0; done < f.size && st.ok();) {
        Chunk c;
        c.offset = f.offset + done;
        c.bytes.resize(std::min<uint64_t>(kChunk, f.size - done));
        st = in->ReadAt(done, c.bytes);
        if (!st.ok()) break;
        h.Update(c.bytes);
        done += c.bytes.size();
        if (done == f.size && ToHex(h.Finish()) != f.id) {
          st = Status::Corruption("fragment " + f.file + ": SHA-256 mismatch (corrupt)");
          break;
        }
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return queue.size() < kQueueDepth || writer_failed; });
        if (writer_failed) return;
        queue.push_back(std::move(c));
        cv.notify_all();
      }
      if (!st.ok()) break;
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_status = st;
    reader_done = true;
    cv.notify_all();
  });

  Sha256 whole;
  Status st;
  auto write = [&](std::span<const uint8_t> b) -> Status {
    whole.Update(b);
    GGSWARM_RETURN_IF_ERROR(out->Write(b));
    if (progress) progress(out->written(), m.file_size);
    return Status::Ok();
  };
  std::vector<uint8_t> zeros;
  auto write_zeros_to = [&](uint64_t end) -> Status {
    while (out->written() < end) {
      zeros.assign(std::min<uint64_t>(kChunk, end - out->written()), 0);
      GGSWARM_RETURN_IF_ERROR(write(zeros));
    }
    return Status::Ok();
  };
  st = write({reinterpret_cast<const uint8_t*>(header_bytes.data()), header_bytes.size()});
  while (st.ok()) {
    Chunk c;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !queue.empty() || reader_done; });
      if (queue.empty()) break;  // reader finished (or failed) and everything was written
      c = std::move(queue.front());
      queue.pop_front();
      cv.notify_all();
    }
    st = write_zeros_to(c.offset);
    if (st.ok()) st = write(c.bytes);
  }
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(mu);
    writer_failed = true;
    cv.notify_all();
  }
  reader.join();
  if (!st.ok()) return st;
  if (!reader_status.ok()) return reader_status;
  GGSWARM_RETURN_IF_ERROR(write_zeros_to(m.file_size));

  ReassembleReport r;
  r.bytes = out->written();
  r.sha256 = ToHex(whole.Finish());
  if (r.sha256 != m.sha256) {
    return Status::Corruption("reassembled file's SHA-256 " + r.sha256 +
                              " differs from the manifest's " + m.sha256 + "; not written");
  }
  GGSWARM_RETURN_IF_ERROR(out->Commit());
  return r;
}

}  // namespace ggswarm::fragments
