// Umbrella header: the whole public API of prefopt. Library code includes the narrower headers.
#pragma once

#include <prefopt/data/collate.h>
#include <prefopt/data/jsonl.h>
#include <prefopt/data/keyphrases.h>
#include <prefopt/losses/degree.h>
#include <prefopt/losses/joint.h>
#include <prefopt/losses/listwise.h>
#include <prefopt/losses/loss_output.h>
#include <prefopt/losses/options.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/reference_free.h>
#include <prefopt/losses/reward.h>
#include <prefopt/losses/token_level.h>
#include <prefopt/losses/unpaired.h>
#include <prefopt/metrics.h>
#include <prefopt/model/llama.h>
#include <prefopt/model/sequence_classifier.h>
#include <prefopt/scoring_joint.h>
#include <prefopt/scoring.h>
#include <prefopt/sequence_reductions.h>
#include <prefopt/version.h>
// Sampling from the model, and the train layer (Trainer, schedule, checkpoints, logging, run configs).
#include <prefopt/model/generate.h>
#include <prefopt/train/batch_scores.h>
#include <prefopt/train/batch_scoring.h>
#include <prefopt/train/checkpoint.h>
#include <prefopt/train/config.h>
#include <prefopt/train/dataset.h>
#include <prefopt/train/logging.h>
#include <prefopt/train/loss_registry.h>
#include <prefopt/train/optim.h>
#include <prefopt/train/reference.h>
#include <prefopt/train/run.h>
#include <prefopt/train/schedule.h>
#include <prefopt/train/trainer.h>
#include <prefopt/train/trainer_state.h>
