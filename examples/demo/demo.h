// The default demo of prefopt-train (what it runs with no argument): a tiny Llama trained from scratch on a
// word-reversal task with a programmatic checker, first supervised on a sloppy annotator's demonstrations, then
// with DPO on pairs of its own samples judged by the checker; it prints the held-out success rate before and
// after preference training and the held-out reward accuracy. It never downloads anything and never reads a
// config file.
#pragma once

/// Runs the demo. argv[1..] are its options (--quick, --seed N, --output_dir DIR, --data_dir DIR, --threads N,
/// --beta B, --rpo_alpha A, --dpo_lr LR,
/// --write_data DIR, --help); argc == 1 runs the full demo with the shipped data. Returns the process exit code
/// (0 on success, 2 on a bad option, 1 on an error, whose message goes to stderr).
///
/// Example:
/// ```
/// int main(int argc, char** argv) { return run_default_demo(argc, argv); }
/// ```
int run_default_demo(int argc, char** argv);

/// The demo's options, as --help prints them.
const char* demo_usage();
