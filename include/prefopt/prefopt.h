// Umbrella header: the whole public API of prefopt. Include narrower headers in library code.
#pragma once

#include "losses/loss_output.h"
#include "losses/pairwise.h"
#include "scoring.h"
#include "version.h"
