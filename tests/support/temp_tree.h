// A temporary folder tree for the model tests (checkpoint folders hold files and sub-folders), removed with
// everything in it when the test ends. POSIX calls, not std::filesystem: libtorch.so exports its own copies of
// some std::filesystem symbols, and remove_all resolved to those crashes (see temp_files.h).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace prefopt::testing {

inline void remove_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* dir = ::opendir(path.c_str())) {
      while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") remove_tree(path + "/" + name);
      }
      ::closedir(dir);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

inline bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

inline uint64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

/// Sets a file's size (sparse when it grows).
inline void resize_file(const std::string& path, uint64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0) << path;
}

class TempTree {
 public:
  TempTree() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/prefopt_model_test_XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    const char* made = ::mkdtemp(buffer.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = made != nullptr ? made : "";
  }
  ~TempTree() {
    if (!path_.empty()) remove_tree(path_);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::string& path() const { return path_; }
  /// The path of name inside the tree (nothing is created).
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  /// Creates the folder name inside the tree and returns its path.
  std::string mkdir(const std::string& name) const {
    const std::string dir = *this / name;
    ::mkdir(dir.c_str(), 0777);
    return dir;
  }

 private:
  std::string path_;
};

}  // namespace prefopt::testing
