// The library's file-system helpers, shared by every layer that writes files (model, train), on POSIX calls rather
// than std::filesystem: libtorch.so exports its own copies of some std::filesystem symbols, which calls from this
// library can bind to (remove_all through them crashes). They only query, create folders, write a text file through
// a temporary, sync and rename; they never delete anything.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

namespace prefopt::files {

struct Status {
  bool exists = false;
  bool regular = false;
  bool directory = false;
  uint64_t size = 0;
};

inline Status status(const std::string& path) {
  Status out;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return out;
  out.exists = true;
  out.regular = S_ISREG(st.st_mode);
  out.directory = S_ISDIR(st.st_mode);
  out.size = static_cast<uint64_t>(st.st_size);
  return out;
}

inline bool exists(const std::string& path) { return status(path).exists; }

inline std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

/// Creates dir and its missing parents; returns an empty string or the reason it failed.
inline std::string make_directories(const std::string& dir) {
  if (dir.empty()) return "";
  const Status st = status(dir);
  if (st.directory) return "";
  if (st.exists) return "it exists and is not a folder";
  const size_t slash = dir.find_last_of('/', dir.size() > 1 ? dir.size() - 2 : 0);
  if (slash != std::string::npos && slash > 0) {
    const std::string parent_error = make_directories(dir.substr(0, slash));
    if (!parent_error.empty()) return parent_error;
  }
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) return std::strerror(errno);
  return "";
}

/// Renames from over to; returns an empty string or the reason it failed.
inline std::string rename_file(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) return std::strerror(errno);
  return "";
}

/// Flushes a file's (or a folder's) data to the disk; best effort (a path that cannot be opened is skipped).
inline void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

/// Publishes a finished temporary file: syncs it, then renames it over `path`, so a reader sees the old file or
/// the whole new one, never a part. Returns an empty string or the reason it failed.
inline std::string publish_file(const std::string& tmp, const std::string& path) {
  sync_path(tmp);
  return rename_file(tmp, path);
}

/// Writes `text` to path + ".tmp" and publishes it over `path` (publish_file). Returns an empty string or the
/// reason it failed, naming the file.
inline std::string write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out.is_open()) return "cannot open '" + tmp + "' for writing";
    out << text;
    out.flush();
    if (!out.good()) return "writing '" + tmp + "' failed";
  }
  const std::string error = publish_file(tmp, path);
  return error.empty() ? "" : "cannot rename '" + tmp + "' to '" + path + "': " + error;
}

}  // namespace prefopt::files
