#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/file.h"
#include "base/sha256.h"
#include "fragments/fragments.h"
#include "fragments/selection.h"

namespace ggswarm::fragments {
namespace {

constexpr size_t kQueueDepth = 4;  // chunks waiting between two stages

// A run of output bytes on its way through the pipeline: a view into a mapped fragment (kept
// alive by `owner`) or a buffer of zeros. Mapping avoids copying fragments into buffers.
struct Chunk {
  uint64_t offset = 0;  // where it goes in the output
  std::span<const uint8_t> bytes;
  std::shared_ptr<const void> owner;
};

// A bounded FIFO between two pipeline stages; Close() ends it (and unblocks both sides).
class ChunkQueue {
 public:
  // False when the queue was closed.
  bool Push(Chunk c) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return q_.size() < kQueueDepth || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(c));
    cv_.notify_all();
    return true;
  }
  // Nothing once the queue is closed and empty.
  std::optional<Chunk> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    Chunk c = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return c;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> q_;
  bool closed_ = false;
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
  auto selection = LoadSelection(dir);
  if (!selection.ok()) return selection.status();
  if (selection->has_value() && !(*selection)->all) {
    for (const FragmentEntry& f : m.fragments) {
      if (!PathExists(dir + "/" + f.file))
        return Status::InvalidArgument(dir + " is a partial copy (" + (*selection)->Describe() +
                                       "); reassembly needs every fragment (" + f.file +
                                       " is absent)");
    }
  }
  auto out = OutputFile::Create(out_path, overwrite);
  if (!out.ok()) return out.status();

  // Three stages, each on its own thread: map each fragment and check its SHA-256 → write
  // the output (with the zero padding between fragments) → hash the whole output. The two
  // hashes dominate; running them apart keeps both cores busy.
  ChunkQueue to_writer, to_hasher;
  Status read_status, write_status;

  std::thread reader([&] {
    for (const FragmentEntry& f : m.fragments) {
      // The hash is checked before any of the fragment goes on to the writer.
      auto map = MapCheckedFragment(dir, f);
      if (!map.ok()) {
        read_status = map.status();
        if (read_status.code() == Status::Code::kNotFound)  // not the caller's path: corrupt
          read_status = Status::Corruption(read_status.message());
        break;
      }
      auto owner = std::make_shared<MappedFile>(std::move(map.value()));
      bool open = true;
      for (uint64_t done = 0; done < f.size && open; done += kIoChunk) {
        const auto part = owner->bytes().subspan(done, std::min<uint64_t>(kIoChunk, f.size - done));
        open = to_writer.Push({f.offset + done, part, owner});
      }
      if (!open) return;
    }
    to_writer.Close();
  });

  Sha256 whole;
  std::thread hasher([&] {
    while (auto c = to_hasher.Pop()) whole.Update(c->bytes);
  });

  auto emit = [&](Chunk c) -> Status {
    GGSWARM_RETURN_IF_ERROR(out->Write(c.bytes));
    if (progress) progress(out->written(), m.file_size);
    to_hasher.Push(std::move(c));
    return Status::Ok();
  };
  auto zeros = std::make_shared<std::vector<uint8_t>>(kIoChunk, 0);
  auto zeros_to = [&](uint64_t end) -> Status {
    while (out->written() < end) {
      const size_t n = std::min<uint64_t>(kIoChunk, end - out->written());
      GGSWARM_RETURN_IF_ERROR(emit({out->written(), {zeros->data(), n}, zeros}));
    }
    return Status::Ok();
  };
  write_status = emit(
      {0, {reinterpret_cast<const uint8_t*>(header_bytes.data()), header_bytes.size()}, nullptr});
  while (write_status.ok()) {
    auto c = to_writer.Pop();
    if (!c) break;
    write_status = zeros_to(c->offset);
    if (write_status.ok()) write_status = emit(std::move(*c));
  }
  if (write_status.ok() && read_status.ok()) write_status = zeros_to(m.file_size);
  to_writer.Close();  // stops the reader early after a write error
  reader.join();
  to_hasher.Close();
  hasher.join();
  if (!write_status.ok()) return write_status;
  if (!read_status.ok()) return read_status;

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
