// KTO's losses, rewards and metrics without the split of the rewards into the desirable and undesirable
// subsets, whose sizes depend on the labels' values: the operator returns this form, so that it runs under
// fake tensors (torch.library.opcheck, torch.compile). Internal to the library.
#pragma once

#include <prefopt/losses/unpaired.h>

namespace prefopt::detail {

// functional::kto_loss with chosen_rewards and rejected_rewards left undefined.
LossOutput kto_loss_unsplit(const at::Tensor& policy_logps, const at::Tensor& ref_logps, const at::Tensor& labels,
                            const KTOLossOptions& options, const KTOLossInputs& inputs);

}  // namespace prefopt::detail
