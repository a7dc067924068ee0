// Checkpoint folders: the atomic write (everything goes into a hidden temporary folder, which is renamed into
// place only once complete), listing and pruning of output_dir/checkpoint-<step>. POSIX calls only, never
// std::filesystem (whose remove_all crashes in binaries linked with libtorch). What goes inside a checkpoint is
// the Trainer's business (trainer.cpp); this file never interprets the files.
//
// Layout of output_dir/checkpoint-<step>/ written by the Trainer:
//   model/config.json, model/model.safetensors   the policy (save_llama)
//   ref_model/...                                the frozen reference, when the loss uses a live one
//   optimizer.pt                                 AdamW state (torch::save)
//   loss_state.pt                                the loss's state (BCO running mean and count), if any
//   rng.pt                                       torch's CPU (and CUDA) generator state
//   trainer_state.json                           global step, schedule step, epoch, position in the epoch's
//                                                shuffled order, the order itself, the shuffle RNG state, the
//                                                logging accumulators, and the config fields that must match
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace prefopt::train {

/// Writes a folder atomically: creates a hidden temporary folder beside `directory` (".<name>.tmp-<pid>"), calls
/// `write(temporary_path)`, syncs the files, then renames it to `directory`. An existing `directory` is first
/// renamed aside and removed after the new one is in place. If `write` throws, the temporary folder is removed
/// and the exception propagates: `directory` is then exactly as before, and no partial folder is left.
///
/// Example:
/// ```
/// prefopt::train::write_directory_atomically("runs/a/checkpoint-10", [&](const std::string& tmp) {
///   prefopt::save_llama(*model, tmp + "/model");
/// });
/// ```
void write_directory_atomically(const std::string& directory, const std::function<void(const std::string&)>& write);

/// Removes a folder and everything under it (POSIX calls). A missing path is not an error.
void remove_directory_tree(const std::string& path);

/// The checkpoint-<step> folders of output_dir, sorted by step (ascending); hidden temporary folders are ignored.
std::vector<std::string> list_checkpoints(const std::string& output_dir);

/// Creates a folder and its parents; an error names the path and the reason.
void make_directories(const std::string& path);

}  // namespace prefopt::train
