// Calls prefopt through its installed headers and library: scores two sequences, computes the DPO loss,
// back-propagates, and exits non-zero if any number is off, so the consumer test checks real linking.
#include <cmath>
#include <iostream>

#include <prefopt/prefopt.h>

int main() {
  torch::manual_seed(0);
  auto logits = torch::randn({4, 3, 11}, torch::requires_grad());
  auto labels = torch::randint(11, {4, 3}, torch::kLong);
  auto scored = prefopt::sequence_logps(logits, labels);
  auto pc = scored.logps.slice(0, 0, 2), pr = scored.logps.slice(0, 2, 4);
  auto ref = torch::zeros({2});
  prefopt::DPOLoss loss(prefopt::DPOLossOptions().beta(0.1));
  auto out = loss(pc, pr, ref, ref);
  out.loss.backward();
  const double expected = (-torch::log_sigmoid(0.1 * (pc - pr))).mean().item<double>();
  const bool ok = std::abs(out.loss.item<double>() - expected) < 1e-6 && logits.grad().defined() &&
                  out.metrics.count("rewards/accuracies") == 1;
  std::cout << "prefopt " << prefopt::kVersion << " consumer: loss " << out.loss.item<double>()
            << (ok ? " ok" : " MISMATCH") << std::endl;
  return ok ? 0 : 1;
}
