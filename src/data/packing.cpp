// Packing a collated batch into one row with cu_seqlens and per-sequence positions, the gathers between the packed
// and the padded layouts, and token-budget batching. Only index arithmetic on CPU int64 tensors; never runs a model.
#include <prefopt/data/packing.h>

#include <algorithm>

#include <c10/util/Exception.h>

namespace prefopt::data {

PackedBatch pack(const SequenceBatch& batch) {
  const torch::Tensor& ids = batch.input_ids;
  TORCH_CHECK(ids.defined() && ids.dim() == 2, "pack: input_ids must have shape [N, T], got ",
              ids.defined() ? ids.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(batch.attention_mask.defined() && batch.attention_mask.sizes() == ids.sizes() &&
                  batch.labels.defined() && batch.labels.sizes() == ids.sizes(),
              "pack: attention_mask and labels must have the shape of input_ids ", ids.sizes());
  const int64_t n = ids.size(0), t = ids.size(1);
  const torch::Tensor mask = batch.attention_mask.to(torch::kCPU, torch::kLong).contiguous();
  const auto m = mask.accessor<int64_t, 2>();
  std::vector<int64_t> offsets(static_cast<size_t>(n + 1), 0), index, positions;
  PackedBatch out;
  for (int64_t r = 0; r < n; ++r) {
    int64_t length = 0;
    while (length < t && m[r][length] == 1) ++length;
    for (int64_t c = length; c < t; ++c) {
      TORCH_CHECK(m[r][c] == 0, "pack: row ", r, " of attention_mask is not right padding (1 at column ", c,
                  " after a 0 at column ", length, "); pack takes the collators' right-padded batches");
    }
    for (int64_t c = 0; c < length; ++c) {
      index.push_back(r * t + c);
      positions.push_back(c);
    }
    offsets[static_cast<size_t>(r + 1)] = offsets[static_cast<size_t>(r)] + length;
    out.max_length = std::max(out.max_length, length);
  }
  const auto s = static_cast<int64_t>(index.size());
  out.padded_index = torch::tensor(index, torch::kLong);
  out.position_ids = torch::tensor(positions, torch::kLong).view({1, s});
  out.cu_seqlens = torch::tensor(offsets, torch::kLong);
  out.input_ids = ids.to(torch::kCPU, torch::kLong).reshape({n * t}).index_select(0, out.padded_index).view({1, s});
  out.labels = batch.labels.to(torch::kCPU, torch::kLong).reshape({n * t}).index_select(0, out.padded_index).view({1, s});
  out.num_sequences = n;
  out.padded_length = t;
  return out;
}

torch::Tensor pack_like(const PackedBatch& packed, const torch::Tensor& padded) {
  TORCH_CHECK(padded.defined() && padded.dim() >= 2 && padded.size(0) == packed.num_sequences &&
                  padded.size(1) == packed.padded_length,
              "pack_like: expected a tensor of shape [N = ", packed.num_sequences, ", T = ", packed.padded_length,
              ", ...], got ", padded.defined() ? padded.sizes() : c10::IntArrayRef{});
  std::vector<int64_t> flat{packed.num_sequences * packed.padded_length};
  for (int64_t d = 2; d < padded.dim(); ++d) flat.push_back(padded.size(d));
  return padded.reshape(flat).index_select(0, packed.padded_index.to(padded.device()));
}

torch::Tensor unpack(const PackedBatch& packed, const torch::Tensor& values_in, double fill) {
  const int64_t s = packed.num_tokens();
  TORCH_CHECK(values_in.defined() && values_in.dim() >= 1, "unpack: expected per-token values [S, ...], got ",
              values_in.defined() ? values_in.sizes() : c10::IntArrayRef{});
  const torch::Tensor values = values_in.dim() >= 2 && values_in.size(0) == 1 && values_in.size(1) == s
                                   ? values_in.squeeze(0)
                                   : values_in;
  TORCH_CHECK(values.size(0) == s, "unpack: expected per-token values [S = ", s, ", ...] or [1, S, ...], got ",
              values_in.sizes());
  std::vector<int64_t> flat{packed.num_sequences * packed.padded_length};
  for (int64_t d = 1; d < values.dim(); ++d) flat.push_back(values.size(d));
  const torch::Tensor base = torch::full(flat, fill, values.options());
  std::vector<int64_t> shape{packed.num_sequences, packed.padded_length};
  for (int64_t d = 1; d < values.dim(); ++d) shape.push_back(values.size(d));
  return base.index_copy(0, packed.padded_index.to(values.device()), values).view(shape);
}

std::vector<std::pair<int64_t, int64_t>> token_budget_batches(const std::vector<int64_t>& tokens, int64_t max_tokens) {
  TORCH_CHECK(max_tokens >= 1, "token_budget_batches: max_tokens must be >= 1, got ", max_tokens);
  std::vector<std::pair<int64_t, int64_t>> out;
  const auto n = static_cast<int64_t>(tokens.size());
  int64_t begin = 0, used = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = tokens[static_cast<size_t>(i)];
    TORCH_CHECK(k >= 0, "token_budget_batches: example ", i, " has a negative token count ", k);
    if (i > begin && used + k > max_tokens) {
      out.emplace_back(begin, i);
      begin = i;
      used = 0;
    }
    used += k;
  }
  if (n > begin) out.emplace_back(begin, n);
  return out;
}

namespace {
int64_t size_of(const std::vector<int64_t>& v) { return static_cast<int64_t>(v.size()); }
}  // namespace

int64_t packed_token_count(const PairExample& e) {
  return 2 * size_of(e.prompt) + size_of(e.chosen) + size_of(e.rejected);
}

int64_t packed_token_count(const ListExample& e) {
  int64_t total = 0;
  for (const auto& r : e.responses) total += size_of(e.prompt) + size_of(r);
  return total;
}

int64_t packed_token_count(const JointPairExample& e) {
  return size_of(e.chosen_prompt) + size_of(e.chosen) + size_of(e.rejected_prompt) + size_of(e.rejected);
}

int64_t packed_token_count(const UnpairedExample& e) { return size_of(e.prompt) + size_of(e.completion); }

int64_t packed_token_count(const CompletionExample& e) { return size_of(e.prompt) + size_of(e.completion); }

}  // namespace prefopt::data
