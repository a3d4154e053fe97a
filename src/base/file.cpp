#include "base/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/sha256.h"

namespace ggswarm {
namespace {

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Opens `path` for reading only if it is a regular file. O_NONBLOCK keeps the open itself from
// waiting for a writer when the path is a FIFO (or a device); the type is checked on the open
// descriptor, so the file cannot be swapped between the check and the use.
StatusOr<int> OpenRegularFile(const std::string& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no such file: " + path);
    return Status::IOError(Errno("cannot open", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError(Errno("cannot stat", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("not a regular file: " + path +
                                   (S_ISDIR(st.st_mode)    ? " (a directory)"
                                    : S_ISFIFO(st.st_mode) ? " (a FIFO)"
                                                           : ""));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

// True when process `pid` is gone (so a "*.partial-PID" file of it is stale).
bool ProcessIsGone(long pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

std::vector<std::string> StalePartials(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "./" : path.substr(0, slash + 1);
  const std::string prefix =
      (slash == std::string::npos ? path : path.substr(slash + 1)) + ".partial-";
  std::vector<std::string> stale;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return stale;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = n.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (ProcessIsGone(std::stol(pid))) stale.push_back(dir + n);
  }
  ::closedir(d);
  return stale;
}

void RemoveStalePartials(const std::string& path) {
  for (const std::string& f : StalePartials(path)) {
    struct stat st {};
    if (::lstat(f.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::unlink(f.c_str());
  }
}

StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  uint64_t size = 0;
  auto opened = OpenRegularFile(path, &size);
  if (!opened.ok()) return opened.status();
  const int fd = *opened;
  MappedFile f;
  f.path_ = path;
  f.size_ = size;
  if (f.size_ > 0) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Status::IOError(Errno("cannot map", path));
    }
    f.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = o.data_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

StatusOr<InputFile> InputFile::Open(const std::string& path) {
  uint64_t size = 0;
  auto opened = OpenRegularFile(path, &size);
  if (!opened.ok()) return opened.status();
  InputFile f;
  f.fd_ = *opened;
  f.size_ = size;
  f.path_ = path;
  return f;
}

InputFile::InputFile(InputFile&& o) noexcept { *this = std::move(o); }

InputFile& InputFile::operator=(InputFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status InputFile::ReadAt(uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(Errno("cannot read", path_));
    }
    if (n == 0) {
      return Status::Corruption(path_ + ": file ends at byte " + std::to_string(offset + done) +
                                ", expected " + std::to_string(offset + out.size()));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<OutputFile> OutputFile::Create(const std::string& path, bool overwrite) {
  if (!overwrite && PathExists(path)) {
    return Status::Exists(path + " already exists (refusing to overwrite it; pass --force)");
  }
  RemoveStalePartials(path);
  OutputFile f;
  f.path_ = path;
  f.overwrite_ = overwrite;
  f.temp_path_ = path + ".partial-" + std::to_string(::getpid());
  f.fd_ = ::open(f.temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) return Status::IOError(Errno("cannot create", f.temp_path_));
  return f;
}

OutputFile::OutputFile(OutputFile&& o) noexcept { *this = std::move(o); }

OutputFile& OutputFile::operator=(OutputFile&& o) noexcept {
  if (this != &o) {
    Abandon();
    fd_ = o.fd_;
    written_ = o.written_;
    overwrite_ = o.overwrite_;
    buffer_ = std::move(o.buffer_);
    path_ = std::move(o.path_);
    temp_path_ = std::move(o.temp_path_);
    o.fd_ = -1;
  }
  return *this;
}

OutputFile::~OutputFile() { Abandon(); }

void OutputFile::Abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
    fd_ = -1;
  }
}

namespace {
constexpr size_t kWriteChunk = kIoChunk;
}  // namespace

Status OutputFile::WriteOut(const uint8_t* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = ::write(fd_, p + done, n - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(Errno("cannot write", temp_path_));
    }
    done += static_cast<size_t>(k);
  }
  return Status::Ok();
}

Status OutputFile::Flush() {
  if (buffer_.empty()) return Status::Ok();
  Status st = WriteOut(buffer_.data(), buffer_.size());
  buffer_.clear();
  return st;
}

Status OutputFile::Write(std::span<const uint8_t> data) {
  if (fd_ < 0) return Status::InvalidArgument("write to a closed file: " + path_);
  size_t at = 0;
  while (at < data.size()) {
    if (buffer_.empty() && data.size() - at >= kWriteChunk) {  // whole aligned chunks directly
      const size_t n = (data.size() - at) / kWriteChunk * kWriteChunk;
      GGSWARM_RETURN_IF_ERROR(WriteOut(data.data() + at, n));
      at += n;
      continue;
    }
    if (buffer_.capacity() < kWriteChunk) buffer_.reserve(kWriteChunk);
    const size_t n = std::min(kWriteChunk - buffer_.size(), data.size() - at);
    buffer_.insert(buffer_.end(), data.data() + at, data.data() + at + n);
    at += n;
    if (buffer_.size() == kWriteChunk) GGSWARM_RETURN_IF_ERROR(Flush());
  }
  written_ += data.size();
  return Status::Ok();
}

Status OutputFile::WriteZeros(uint64_t n) {
  static const std::vector<uint8_t> kZeros(1 << 16, 0);
  while (n > 0) {
    uint64_t k = std::min<uint64_t>(n, kZeros.size());
    GGSWARM_RETURN_IF_ERROR(Write({kZeros.data(), static_cast<size_t>(k)}));
    n -= k;
  }
  return Status::Ok();
}

Status OutputFile::Commit() {
  if (fd_ < 0) return Status::InvalidArgument("commit of a closed file: " + path_);
  if (Status st = Flush(); !st.ok()) {
    Abandon();
    return st;
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    return Status::IOError(Errno("cannot close", temp_path_));
  }
  fd_ = -1;
  // Checked again at the last moment: a file that appeared while we wrote is not replaced.
  if (!overwrite_ && PathExists(path_)) {
    ::unlink(temp_path_.c_str());
    return Status::Exists(path_ + " appeared while writing; left untouched");
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    Status st = Status::IOError(Errno("cannot rename to", path_));
    ::unlink(temp_path_.c_str());
    return st;
  }
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;  // a dangling symlink is something there too
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes) {
  auto in = InputFile::Open(path);
  if (!in.ok()) return in.status();
  if (in->size() > max_bytes) {
    return Status::InvalidArgument(path + " is " + std::to_string(in->size()) +
                                   " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  std::string s(in->size(), '\0');
  GGSWARM_RETURN_IF_ERROR(
      in->ReadAt(0, {reinterpret_cast<uint8_t*>(s.data()), static_cast<size_t>(s.size())}));
  return s;
}

}  // namespace ggswarm

namespace ggswarm {

StatusOr<std::string> Sha256HexOfFile(const InputFile& in, std::span<uint8_t> buf,
                                      const std::function<void(size_t)>& on_chunk) {
  Sha256 h;
  for (uint64_t done = 0; done < in.size();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), in.size() - done));
    GGSWARM_RETURN_IF_ERROR(in.ReadAt(done, buf.subspan(0, n)));
    h.Update(buf.subspan(0, n));
    if (on_chunk) on_chunk(n);
    done += n;
  }
  return ToHex(h.Finish());
}

}  // namespace ggswarm
