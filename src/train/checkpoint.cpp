// Atomic checkpoint folders: write into a hidden temporary folder, fsync, rename into place; prune and list them.
// Uses POSIX calls only (std::filesystem::remove_all crashes in binaries linked with libtorch). Never interprets
// the files it moves.
#include <prefopt/train/checkpoint.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <c10/util/Exception.h>

#include "../common/files.h"

namespace prefopt::train {

namespace {

std::string parent_of(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

std::string base_of(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// fsyncs every file under dir, then dir itself, so the rename publishes complete data.
void sync_tree(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(d)) {
      const std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = dir + "/" + name;
      if (files::status(path).directory) {
        sync_tree(path);
      } else {
        files::sync_path(path);
      }
    }
    ::closedir(d);
  }
  files::sync_path(dir);
}

}  // namespace

void make_directories(const std::string& path) {
  const std::string error = files::make_directories(path);
  TORCH_CHECK(error.empty(), "cannot create the folder \"", path, "\": ", error);
}

void remove_directory_tree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(path.c_str())) {
      while (const dirent* entry = ::readdir(d)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") remove_directory_tree(path + "/" + name);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

void write_directory_atomically(const std::string& directory, const std::function<void(const std::string&)>& write) {
  TORCH_CHECK(!directory.empty(), "checkpoint directory must not be empty");
  const std::string parent = parent_of(directory);
  const std::string name = base_of(directory);
  make_directories(parent);
  const std::string pid = std::to_string(::getpid());
  const std::string tmp = parent + "/." + name + ".tmp-" + pid;
  remove_directory_tree(tmp);  // a leftover of a crashed run with the same pid
  TORCH_CHECK(::mkdir(tmp.c_str(), 0777) == 0, "cannot create the temporary folder \"", tmp,
              "\": ", std::strerror(errno));
  try {
    write(tmp);
    sync_tree(tmp);
  } catch (...) {
    remove_directory_tree(tmp);
    throw;
  }
  // rename(2) cannot replace a non-empty folder, so an existing one is moved aside first; between the two renames
  // the old copy still exists under the hidden name, never a partial new one under the real name.
  const std::string old = parent + "/." + name + ".old-" + pid;
  const bool replacing = files::exists(directory);
  if (replacing) {
    remove_directory_tree(old);
    if (::rename(directory.c_str(), old.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      remove_directory_tree(tmp);
      TORCH_CHECK(false, "cannot move the old \"", directory, "\" aside: ", reason);
    }
  }
  if (::rename(tmp.c_str(), directory.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    if (replacing) ::rename(old.c_str(), directory.c_str());
    remove_directory_tree(tmp);
    TORCH_CHECK(false, "cannot rename \"", tmp, "\" to \"", directory, "\": ", reason);
  }
  files::sync_path(parent);
  if (replacing) remove_directory_tree(old);
}

std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<long long, std::string>> found;
  if (DIR* d = ::opendir(output_dir.c_str())) {
    while (const dirent* entry = ::readdir(d)) {
      const std::string name = entry->d_name;
      const std::string prefix = "checkpoint-";
      if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) continue;
      const std::string digits = name.substr(prefix.size());
      if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
      const std::string path = files::join(output_dir, name);
      if (!files::status(path).directory) continue;
      found.emplace_back(std::atoll(digits.c_str()), path);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace prefopt::train
