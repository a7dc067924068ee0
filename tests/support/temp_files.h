// A temporary directory for test fixtures: small files written by the test itself and removed with the directory
// when the test ends, so that no data file is committed. POSIX calls, not std::filesystem: libtorch.so exports its
// own copies of some std::filesystem symbols, and remove_all resolved to those crashes.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace prefopt::testing {

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/prefopt_test_XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    const char* made = ::mkdtemp(buffer.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    // The tests write plain files only, one level deep.
    if (path_.empty()) return;
    if (DIR* dir = ::opendir(path_.c_str())) {
      while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") ::unlink((path_ + "/" + name).c_str());
      }
      ::closedir(dir);
    }
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Writes `content` byte for byte to `name` in the directory and returns the file's path.
  std::string write(const std::string& name, const std::string& content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    return file;
  }
  std::string path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace prefopt::testing
