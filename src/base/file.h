// Files: a read-only memory map, positioned reads, and an output file that appears under its
// final name only when it is complete (written to a temporary name, renamed on Commit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace ggswarm {

// Bytes moved per read or write when streaming a file: large enough to amortise the system
// calls, small enough for one per thread to stay in L2 + L3; OutputFile writes in pieces of
// this size at aligned offsets so that the page cache can keep the file in large folios.
constexpr size_t kIoChunk = 4u << 20;

// A whole file mapped read-only. Empty files map to an empty span.
class MappedFile {
 public:
  static StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
};

// A file opened for positioned reads (no mapping: memory stays bounded by the caller's buffer).
class InputFile {
 public:
  static StatusOr<InputFile> Open(const std::string& path);
  InputFile() = default;
  InputFile(InputFile&& o) noexcept;
  InputFile& operator=(InputFile&& o) noexcept;
  InputFile(const InputFile&) = delete;
  ~InputFile();

  uint64_t size() const { return size_; }
  // Reads exactly out.size() bytes at `offset`; a short file is an error naming the path.
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

// Writes to "<path>.partial-<pid>" and renames to `path` on Commit(). Destroyed without Commit,
// it removes the temporary file; a process killed before either leaves it behind, and the
// next Create of the same path removes it (RemoveStalePartials). It never replaces anything
// that exists at `path` (a dangling symbolic link too) unless `overwrite`.
class OutputFile {
 public:
  static StatusOr<OutputFile> Create(const std::string& path, bool overwrite);
  OutputFile() = default;
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&& o) noexcept;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  Status Write(std::span<const uint8_t> data);
  Status WriteZeros(uint64_t n);
  uint64_t written() const { return written_; }
  Status Commit();

 private:
  void Abandon();
  Status WriteOut(const uint8_t* p, size_t n);  // the write(2) loop
  Status Flush();
  int fd_ = -1;
  uint64_t written_ = 0;
  // Writes leave in whole 4 MiB pieces at 4 MiB-aligned offsets, so that the page cache
  // can hold the file in large folios (which map with huge pages: reading weights from the
  // mmap then runs faster than from 4 KiB pages; see README).
  std::vector<uint8_t> buffer_;
  bool overwrite_ = false;
  std::string path_, temp_path_;
};

// Whether anything is at `path`, a dangling symbolic link included.
bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// The entries "<path>.partial-<pid>" (files or folders) whose process no longer runs.
std::vector<std::string> StalePartials(const std::string& path);
// Removes those of them that are regular files.
void RemoveStalePartials(const std::string& path);
StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes);

// The SHA-256 (hex) of all of `in`, read through `buf` (its size sets the read size);
// `on_chunk`, when given, sees the size of every piece read.
StatusOr<std::string> Sha256HexOfFile(const InputFile& in, std::span<uint8_t> buf,
                                      const std::function<void(size_t)>& on_chunk = {});

}  // namespace ggswarm
