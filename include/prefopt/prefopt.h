// Umbrella header: the whole public API of prefopt. Library code includes the narrower headers.
#pragma once

#include <prefopt/data/collate.h>
#include <prefopt/data/jsonl.h>
#include <prefopt/losses/loss_output.h>
#include <prefopt/losses/pairwise.h>
#include <prefopt/losses/reference_free.h>
#include <prefopt/losses/reward.h>
#include <prefopt/losses/unpaired.h>
#include <prefopt/model/llama.h>
#include <prefopt/scoring.h>
#include <prefopt/sequence_reductions.h>
#include <prefopt/version.h>
