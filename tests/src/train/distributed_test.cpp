// Tests of the data-parallel runtime: torchrun's environment read into DistributedEnv (and its errors), and c10d
// process groups across real processes on loopback: every collective the trainer uses gives the right values on
// every rank (which also shows that Debian's Gloo headers agree with the Gloo inside LibTorch for what prefopt
// calls), and a rank that dies ends the others' collective with an error within the timeout instead of a hang.
#include <array>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/cuda.h>
#include <torch/serialize.h>

#include <prefopt/train/distributed.h>

#include "support/expect_error.h"
#include "support/temp_tree.h"

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
std::vector<Rank> launch(int world, const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
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
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
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

std::vector<float> read_floats(const std::string& path) {
  std::vector<float> out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    float v = 0;
    while (std::fread(&v, sizeof(float), 1, f) == 1) out.push_back(v);
    std::fclose(f);
  }
  return out;
}

// The norm of a - b against b's, in float64.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return !a.empty() && a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

torch::Tensor reference_table(const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  torch::Tensor values;
  archive.read("ref_logps", values);
  return values;
}

std::vector<double> losses(const std::string& output) {
  std::vector<double> out;
  size_t at = 0;
  while ((at = output.find("step ", at)) != std::string::npos) {
    long long step = 0;
    double loss = 0;
    if (std::sscanf(output.c_str() + at, "step %lld loss %lf", &step, &loss) == 2) out.push_back(loss);
    at += 5;
  }
  return out;
}

// Two ranks with batch 2 each (in `dir`/two) against one process with batch 4 on the same pairs plus the one the
// ranks wrap to (`dir`/one): bit-identical parameters on both ranks, equal to the single process's within 1e-6
// relative (the norm of the difference against the parameters' norm; `tolerance`), the same loss at each of 4 steps, logged
// alike by every rank (the mean over the ranks). Returns rank 0's parameters and losses.
std::pair<std::vector<float>, std::vector<double>> expect_two_ranks_like_one(const std::string& dir,
                                                                            const std::vector<std::string>& env = {},
                                                                            double tolerance = 1e-6) {
  const auto two = launch(2, {"train", dir + "/two", "4", "2"}, env);
  for (const auto& r : two) EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> padded = env;
  padded.push_back("PAD_DATA=1");
  const auto one = launch(1, {"train", dir + "/one", "4", "4"}, padded);
  EXPECT_EQ(one[0].exit_code, 0) << one[0].output;
  const auto p0 = read_floats(dir + "/two/params_rank0.bin"), p1 = read_floats(dir + "/two/params_rank1.bin");
  EXPECT_TRUE(same_bytes(p0, p1));
  const auto single = read_floats(dir + "/one/params_rank0.bin");
  EXPECT_EQ(single.size(), p0.size());
  if (single.size() == p0.size()) EXPECT_LE(relative_difference(p0, single), tolerance);
  const auto l2 = losses(two[0].output), l1 = losses(one[0].output);
  EXPECT_EQ(l2.size(), 4u) << two[0].output;
  EXPECT_EQ(l1.size(), 4u) << one[0].output;
  for (size_t i = 0; i < 4 && i < l1.size() && i < l2.size(); ++i) {
    EXPECT_NEAR(l2[i], l1[i], tolerance * std::abs(l1[i])) << "step " << i + 1;
  }
  EXPECT_EQ(losses(two[1].output), l2);
  return {p0, l2};
}

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

// What every rank of the worker's "collectives" scenario must print.
void expect_collectives(const std::vector<Rank>& ranks) {
  const int world = static_cast<int>(ranks.size());
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
    std::snprintf(expected, sizeof(expected), "broadcast %.1f %d", world - 1.0, 10 * (world - 1));
    EXPECT_TRUE(contains(out, expected));
    EXPECT_TRUE(contains(out, "all_gather ranks in order"));
    EXPECT_TRUE(contains(out, "rank " + std::to_string(r) + " of " + std::to_string(world) + " done"));
  }
}

TEST(TrainDistributed, GlooCollectivesAcrossProcesses) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  for (const int world : {2, 3}) expect_collectives(launch(world, {"collectives"}));
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

// Two ranks on seven pairs (not a multiple of 2; the second rank's last example wraps to the first), batch 2 per
// rank, against one process with batch 4 on the same seven pairs plus the wrapped one: the same global batches.
TEST(TrainDistributed, TwoRanksTrainLikeOneProcessWithTheGlobalBatchAndResumeExactly) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  prefopt::testing::TempTree tmp;
  const auto [p0, l2] = expect_two_ranks_like_one(tmp.path());
  if (::testing::Test::HasFailure()) return;

  // Only rank 0 wrote; a resume of the 2-rank run from its step-2 checkpoint ends bit-identical.
  EXPECT_TRUE(prefopt::testing::path_exists(tmp / "two/checkpoint-2/trainer_state.json"));
  const auto resumed = launch(2, {"train", tmp / "resumed", "4", "2", tmp / "two/checkpoint-2"});
  for (const auto& r : resumed) ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_bytes(read_floats(tmp / "resumed/params_rank0.bin"), p0));
  const auto lr = losses(resumed[0].output);
  ASSERT_EQ(lr.size(), 2u);
  EXPECT_EQ(lr[0], l2[2]);
  EXPECT_EQ(lr[1], l2[3]);
}

TEST(TrainDistributed, KillingOneRankEndsTheOtherWithAClearError) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  prefopt::testing::TempTree tmp;
  const auto ranks = launch(2, {"train", tmp / "run", "6", "2"}, {"DIE_AT_STEP=2", "PG_TIMEOUT_MS=5000"});
  EXPECT_EQ(ranks[1].exit_code, 9) << ranks[1].output;
  EXPECT_EQ(ranks[0].exit_code, 3) << ranks[0].output;
  EXPECT_TRUE(contains(ranks[0].output, "process group:")) << ranks[0].output;
  EXPECT_TRUE(contains(ranks[0].output, "failed on rank 0 of 2")) << ranks[0].output;
  double seconds = 1e9;
  const size_t at = ranks[0].output.find("error after ");
  ASSERT_NE(at, std::string::npos);
  std::sscanf(ranks[0].output.c_str() + at, "error after %lf s", &seconds);
  EXPECT_LT(seconds, 30.0);
}

TEST(TrainDistributed, BatchStatisticsAndPrecomputedReferenceDoNotDependOnTheWorldSize) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  // bco_pair's running mean folds in each global batch's mean reward; the reference table is computed in two
  // shares and gathered. Both must give what one process with the same global batch gives.
  prefopt::testing::TempTree tmp;
  expect_two_ranks_like_one(tmp.path(), {"BCO=1"});

  // Rank 0 wrote the gathered table: the single process's rows (it has one padding example more).
  const torch::Tensor t2 = reference_table(tmp / "two/ref_logps.pt"), t1 = reference_table(tmp / "one/ref_logps.pt");
  ASSERT_EQ(t2.size(0), 7);
  EXPECT_TRUE(torch::allclose(t2, t1.slice(0, 0, 7), 1e-6, 1e-6)) << t2 << t1;
  EXPECT_FALSE(prefopt::testing::path_exists(tmp / "two/ref_logps_eval.pt"));
}

TEST(TrainDistributed, ShardedOptimizerStateTrainsTheSameParametersAndCheckpointsTheWholeState) {
  if (!pt::ProcessGroup::available(torch::kCPU)) GTEST_SKIP() << "built without Gloo's headers (libgloo-dev)";
  prefopt::testing::TempTree tmp;
  const auto sharded = launch(2, {"train", tmp / "sharded", "4", "2"}, {"SHARD_OPTIMIZER=1"});
  for (const auto& r : sharded) ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plain = launch(2, {"train", tmp / "plain", "4", "2"});
  for (const auto& r : plain) ASSERT_EQ(r.exit_code, 0) << r.output;
  // AdamW updates each parameter on its own, so the owner's update is the unsharded one, bit for bit.
  const auto s0 = read_floats(tmp / "sharded/params_rank0.bin"), s1 = read_floats(tmp / "sharded/params_rank1.bin");
  const auto u0 = read_floats(tmp / "plain/params_rank0.bin");
  EXPECT_TRUE(same_bytes(s0, s1));
  EXPECT_TRUE(same_bytes(s0, u0));

  // The sharded run's checkpoint holds the whole state: an unsharded run resumes from it exactly, and a sharded
  // one from the unsharded run's checkpoint.
  const auto into_plain = launch(2, {"train", tmp / "into_plain", "4", "2", tmp / "sharded/checkpoint-2"});
  for (const auto& r : into_plain) ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_bytes(read_floats(tmp / "into_plain/params_rank0.bin"), u0));
  const auto into_sharded =
      launch(2, {"train", tmp / "into_sharded", "4", "2", tmp / "plain/checkpoint-2"}, {"SHARD_OPTIMIZER=1"});
  for (const auto& r : into_sharded) ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(same_bytes(read_floats(tmp / "into_sharded/params_rank1.bin"), u0));
}

// NCCL needs a GPU per rank: with one GPU (the GPU script's machine) it runs with world size 1; with two, the
// 2-rank training check runs on CUDA too.
TEST(TrainDistributedCuda, NcclCollectivesAndTrainingWithWorldSizeOne) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!pt::ProcessGroup::available(torch::kCUDA)) GTEST_SKIP() << "built without NCCL's header (nccl.h)";
  expect_collectives(launch(1, {"collectives"}, {"DEVICE=cuda"}));
  prefopt::testing::TempTree tmp;
  const auto one = launch(1, {"train", tmp / "one", "4", "2"}, {"DEVICE=cuda"});
  EXPECT_EQ(one[0].exit_code, 0) << one[0].output;
  EXPECT_EQ(losses(one[0].output).size(), 4u) << one[0].output;
}

TEST(TrainDistributedCuda, TwoRanksOnTwoGpusTrainLikeOneProcess) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!pt::ProcessGroup::available(torch::kCUDA)) GTEST_SKIP() << "built without NCCL's header (nccl.h)";
  if (torch::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 CUDA devices, found " << torch::cuda::device_count();
  expect_collectives(launch(2, {"collectives"}, {"DEVICE=cuda"}));
  prefopt::testing::TempTree tmp;
  // CUDA's reductions are not ordered like the CPU's: 1e-5 instead of 1e-6.
  expect_two_ranks_like_one(tmp.path(), {"DEVICE=cuda"}, 1e-5);
}
