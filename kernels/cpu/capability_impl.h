// The body of every capability_*.cpp: all vectorised CPU row loops, instantiated for the four input dtypes
// in the namespace that CPU_CAPABILITY names (DEFAULT, AVX2 or AVX512). No static data and no initialisers
// here (code compiled with AVX flags must not run before the CPU has been checked).
#include "token_entropy_rows.h"
#include "token_kl_rows.h"
#include "token_logps_rows.h"
#include "vec_rows.h"
#include "wpo_token_stats_rows.h"

namespace prefopt::kernels::cpu {
namespace CPU_CAPABILITY {

#define PREFOPT_INSTANTIATE_ROWS(scalar_t, acc_t)                                                        \
  template void token_logps_forward<scalar_t, acc_t>(const TokenLogpsParams<scalar_t, acc_t>&);          \
  template void token_logps_backward<scalar_t, acc_t>(const TokenLogpsBackwardParams<scalar_t, acc_t>&); \
  template void token_kl_forward<scalar_t, acc_t>(const TokenKlParams<scalar_t, acc_t>&);                \
  template void token_kl_backward<scalar_t, acc_t>(const TokenKlBackwardParams<scalar_t, acc_t>&);       \
  template void token_entropy_forward<scalar_t, acc_t>(const TokenEntropyParams<scalar_t, acc_t>&);      \
  template void wpo_token_stats_forward<scalar_t, acc_t>(const WpoTokenStatsParams<scalar_t, acc_t>&);

PREFOPT_INSTANTIATE_ROWS(float, float)
PREFOPT_INSTANTIATE_ROWS(double, double)
PREFOPT_INSTANTIATE_ROWS(c10::BFloat16, float)
PREFOPT_INSTANTIATE_ROWS(c10::Half, float)
#undef PREFOPT_INSTANTIATE_ROWS

}  // namespace CPU_CAPABILITY
}  // namespace prefopt::kernels::cpu
