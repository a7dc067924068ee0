// Tests of the data-parallel runtime: torchrun's environment read into DistributedEnv (and its errors), and c10d
// process groups across real processes on loopback: every collective the trainer uses gives the right values on
// every rank (which also shows that Debian's Gloo headers agree with the Gloo inside LibTorch for what prefopt
// calls), and a rank that dies ends the others' collective with an error within the timeout instead of a hang.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <prefopt/train/distributed.h>

#include "support/expect_error.h"

extern char** environ;

namespace pt = prefopt::train;
using prefopt::testing::expect_error;

namespace {

// Sets environment variables for a scope (unset when the value is empty) and restores them after.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      if (value.empty()) ::unsetenv(name.c_str());
      else ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A TCP port free right now on loopback.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct Rank {
  int exit_code = -1;
  std::string output;
};

// Runs `world` copies of the worker as torchrun would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
// each with its output captured in a temporary file, and waits for all.
std::vector<Rank> launch(int world, const std::vector<std::string>& args) {
  const std::string worker = PREFOPT_DISTRIBUTED_WORKER;
  const int port = free_port();
  std::vector<pid_t> pids;
  std::vector<std::string> outputs;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back("RANK=" + std::to_string(r));
    env_strings.push_back("LOCAL_RANK=" + std::to_string(r));
    env_strings.push_back("WORLD_SIZE=" + std::to_string(world));
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back("MASTER_PORT=" + std::to_string(port));
    env_strings.push_back("GLOO_SOCKET_IFNAME=lo");
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings{worker};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    char path[] = "/tmp/prefopt_rank_XXXXXX";
    const int fd = ::mkstemp(path);
    outputs.emplace_back(path);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fd, 1);
    posix_spawn_file_actions_adddup2(&actions, fd, 2);
    pid_t pid = 0;
    EXPECT_EQ(::posix_spawn(&pid, worker.c_str(), &actions, nullptr, argv.data(), envp.data()), 0) << worker;
    posix_spawn_file_actions_destroy(&actions);
    ::close(fd);
    pids.push_back(pid);
  }
  std::vector<Rank> ranks(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    int status = 0;
    ::waitpid(pids[static_cast<size_t>(r)], &status, 0);
    ranks[static_cast<size_t>(r)].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (FILE* f = std::fopen(outputs[static_cast<size_t>(r)].c_str(), "r")) {
      std::array<char, 4096> buffer{};
      size_t n = 0;
      while ((n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) ranks[static_cast<size_t>(r)].output.append(buffer.data(), n);
      std::fclose(f);
    }
    ::unlink(outputs[static_cast<size_t>(r)].c_str());
  }
  return ranks;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(TrainDistributedEnv, ReadsTorchrunsVariables) {
  {
    ScopedEnv env({{"RANK", ""}, {"WORLD_SIZE", ""}, {"LOCAL_RANK", ""}, {"MASTER_ADDR", ""}, {"MASTER_PORT", ""}});
    const auto e = pt::DistributedEnv::from_environment();
    EXPECT_EQ(e.world_size, 1);
    EXPECT_EQ(e.rank, 0);
    EXPECT_FALSE(e.distributed());
  }
  {
    ScopedEnv env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"},
                   {"MASTER_PORT", "1234"}});
    const auto e = pt::DistributedEnv::from_environment();
    EXPECT_EQ(e.rank, 3);
    EXPECT_EQ(e.world_size, 4);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.master_addr, "node0");
    EXPECT_EQ(e.master_port, 1234);
    EXPECT_TRUE(e.distributed());
  }
}

TEST(TrainDistributedEnv, BadVariablesAreNamed) {
  {
    ScopedEnv env({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", ""}});
    expect_error([] { pt::DistributedEnv::from_environment(); },
                 "environment variable RANK: expected 0 <= RANK < WORLD_SIZE = 2, got 2");
  }
  {
    ScopedEnv env({{"RANK", ""}, {"WORLD_SIZE", "2"}});
    expect_error([] { pt::DistributedEnv::from_environment(); }, "environment variable RANK: not set, but WORLD_SIZE is 2");
  }
  {
    ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "two"}});
    expect_error([] { pt::DistributedEnv::from_environment(); },
                 "environment variable WORLD_SIZE: expected an integer, got \"two\"");
  }
  {
    ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_PORT", "70000"}});
    expect_error([] { pt::DistributedEnv::from_environment(); },
                 "environment variable MASTER_PORT: expected a port in [1, 65535], got 70000");
  }
}

TEST(TrainDistributed, GlooCollectivesAcrossProcesses) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  for (const int world : {2, 3}) {
    const auto ranks = launch(world, {"collectives"});
    const double sum = world * (world + 1) / 2.0;
    for (int r = 0; r < world; ++r) {
      const auto& out = ranks[static_cast<size_t>(r)].output;
      SCOPED_TRACE("world " + std::to_string(world) + " rank " + std::to_string(r) + ":\n" + out);
      EXPECT_EQ(ranks[static_cast<size_t>(r)].exit_code, 0);
      char expected[64];
      std::snprintf(expected, sizeof(expected), "all_reduce %.1f %.1f %.1f", sum, sum, sum);
      EXPECT_TRUE(contains(out, expected));
      std::snprintf(expected, sizeof(expected), "all_reduce_async %.1f", 6.0 * sum);
      EXPECT_TRUE(contains(out, expected));
      EXPECT_TRUE(contains(out, "broadcast 1.0 10"));
      EXPECT_TRUE(contains(out, "all_gather ranks in order"));
      EXPECT_TRUE(contains(out, "rank " + std::to_string(r) + " of " + std::to_string(world) + " done"));
    }
  }
}

TEST(TrainDistributed, ADeadRankEndsTheOthersWithAnErrorWithinTheTimeout) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  const auto ranks = launch(2, {"die_early", "3000"});
  EXPECT_EQ(ranks[1].exit_code, 7) << ranks[1].output;
  const auto& out = ranks[0].output;
  EXPECT_EQ(ranks[0].exit_code, 3) << out;
  EXPECT_TRUE(contains(out, "process group: all_reduce failed on rank 0 of 2")) << out;
  double seconds = 1e9;
  std::sscanf(out.c_str(), "error after %lf s", &seconds);
  EXPECT_LT(seconds, 30.0) << out;
}
