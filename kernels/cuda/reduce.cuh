// Warp and block merges of a row state (the OnlineLogSumExp / KlRowState / EntropyRowState / WpoRowState /
// PairAnchorState of kernels/common), for the CUDA kernels: every field is shuffled as a value of the state's
// accumulation type and the two states are merged with the state's own merge (passed in as a functor), so the
// GPU combines partial rows with exactly the math the CPU uses.
#pragma once

#include <cuda_runtime.h>

#include <cstring>

namespace prefopt::kernels::cuda {

template <typename State>
__device__ __forceinline__ State shfl_down_state(const State& s, int offset) {
  using acc_t = typename State::acc_type;
  constexpr int kFields = sizeof(State) / sizeof(acc_t);
  static_assert(sizeof(State) == kFields * sizeof(acc_t), "a row state must hold acc_t fields only");
  acc_t in[kFields];
  acc_t out[kFields];
  memcpy(in, &s, sizeof(State));
#pragma unroll
  for (int f = 0; f < kFields; ++f) out[f] = __shfl_down_sync(0xffffffffu, in[f], offset);
  State r;
  memcpy(&r, out, sizeof(State));
  return r;
}

// Lane 0 ends with the merge of the warp's 32 states.
template <typename State, typename Merge>
__device__ __forceinline__ State warp_merge(State s, Merge merge) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) merge(s, shfl_down_state(s, offset));
  return s;
}

// Every thread of the block ends with the merge of all kThreads states. `empty` is the merge identity.
template <int kThreads, typename State, typename Merge>
__device__ __forceinline__ State block_merge(State s, State empty, Merge merge) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block size must be a multiple of 32");
  constexpr int kWarps = kThreads / 32;
  s = warp_merge(s, merge);
  if constexpr (kWarps == 1) {
    __shared__ State result;
    if (threadIdx.x == 0) result = s;
    __syncthreads();
    return result;
  } else {
    __shared__ State partial[kWarps];
    __shared__ State result;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = s;
    __syncthreads();
    if (warp == 0) {
      State t = lane < kWarps ? partial[lane] : empty;
      t = warp_merge(t, merge);
      if (lane == 0) result = t;
    }
    __syncthreads();
    return result;
  }
}

}  // namespace prefopt::kernels::cuda
