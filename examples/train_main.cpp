// prefopt-train: fine-tunes a Llama-family model with any prefopt loss from a JSON config (docs/training.md).
// With no argument it runs the default demo (examples/demo/). Parses the command line and reports; the training
// itself is prefopt::train::run_training.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <c10/util/Exception.h>

#include <prefopt/train/checkpoint.h>
#include <prefopt/train/loss_registry.h>
#include <prefopt/train/run.h>

#include "demo/demo.h"

namespace {

constexpr const char* kUsage =
    "usage: prefopt-train [CONFIG.json [--output_dir DIR] [--max_steps N] [--resume_from DIR | --resume]\n"
    "                     [--overwrite] [--dump_dataset FILE]] | --loss_options | --help\n"
    "  With no argument, runs the default demo.\n"
    "  --loss_options   prints every loss, its data format and its options (docs/training.md's table)\n"
    "  CONFIG.json      the run configuration (every key: docs/training.md)\n"
    "  --output_dir     overrides training.output_dir\n"
    "  --max_steps      overrides training.max_steps; with a resume, a different number of steps continues the\n"
    "                   run with its learning-rate schedule recomputed for the new total\n"
    "  --resume_from    continues from a checkpoint folder (output_dir/checkpoint-<step>)\n"
    "  --resume         continues from the latest checkpoint in output_dir\n"
    "  --overwrite      deletes output_dir first (otherwise an output_dir holding checkpoints is an error\n"
    "                   unless resuming)\n"
    "  --dump_dataset   writes the training data as the trainer encodes it (pre-tokenized JSONL: prompt_ids,\n"
    "                   chosen_ids, ...) to FILE and exits without training\n";

int fail(const std::string& message) {
  std::fprintf(stderr, "prefopt-train: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 1) return run_default_demo(argc, argv);
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    std::fputs(kUsage, stdout);
    std::fputs("\nThe default demo (no CONFIG.json):\n", stdout);
    std::fputs(demo_usage(), stdout);
    return 0;
  }
  if (first == "--loss_options") {
    std::fputs(prefopt::train::loss_options_markdown().c_str(), stdout);
    return 0;
  }
  if (!first.empty() && first[0] == '-') return run_default_demo(argc, argv);
  try {
    auto run = prefopt::train::load_run_config(first);
    bool overwrite = false, resume_latest = false;
    std::string dump_path;
    for (int i = 2; i < argc; ++i) {
      const std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value\n" + kUsage);
        return argv[++i];
      };
      if (arg == "--output_dir") {
        run.trainer.output_dir(value());
      } else if (arg == "--max_steps") {
        const std::string v = value();
        char* end = nullptr;
        const long long n = std::strtoll(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0') throw std::runtime_error("--max_steps: expected an integer, got " + v);
        run.trainer.max_steps(n);
      } else if (arg == "--resume_from") {
        run.trainer.resume_from(value());
      } else if (arg == "--resume") {
        resume_latest = true;
      } else if (arg == "--overwrite") {
        overwrite = true;
      } else if (arg == "--dump_dataset") {
        dump_path = value();
      } else {
        throw std::runtime_error("unknown argument " + arg + "\n" + kUsage);
      }
    }
    if (!dump_path.empty()) {
      prefopt::train::write_encoded_dataset(run, dump_path);
      std::printf("wrote the encoded training data to %s\n", dump_path.c_str());
      return 0;
    }
    const std::string out = run.trainer.output_dir();
    // Under torchrun only rank 0 owns output_dir (it alone writes there): the others neither delete nor judge it.
    const bool owns_output = prefopt::train::DistributedEnv::from_environment().rank == 0;
    if (overwrite && owns_output && !out.empty()) prefopt::train::remove_directory_tree(out);
    if (resume_latest) {
      if (out.empty()) throw std::runtime_error("--resume needs an output_dir");
      const auto checkpoints = prefopt::train::list_checkpoints(out);
      if (checkpoints.empty()) throw std::runtime_error("--resume: no checkpoint-<step> folder in " + out);
      run.trainer.resume_from(checkpoints.back());
    }
    if (owns_output && !out.empty() && run.trainer.resume_from().empty() &&
        !prefopt::train::list_checkpoints(out).empty()) {
      throw std::runtime_error("output_dir " + out + " already holds checkpoints; pass --resume to continue, " +
                               "--overwrite to start over, or another --output_dir");
    }
    const auto result = prefopt::train::run_training(run);
    if (!owns_output) return 0;  // rank 0 reports for the job
    std::printf("trained %lld steps\n", static_cast<long long>(result.global_step));
    if (!result.logs.empty()) {
      for (const auto& [name, value] : result.logs.back().metrics) std::printf("  %s = %.6g\n", name.c_str(), value);
    }
    if (!result.evals.empty()) {
      std::printf("evaluation:\n");
      for (const auto& [name, value] : result.evals.back().metrics) std::printf("  %s = %.6g\n", name.c_str(), value);
    }
    if (!result.last_checkpoint.empty()) std::printf("last checkpoint: %s\n", result.last_checkpoint.c_str());
    return 0;
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
