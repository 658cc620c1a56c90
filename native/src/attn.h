// Scaled dot-product attention on the CPU, as an MLX custom primitive.
#pragma once

#include <optional>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace runtime_native {

// softmax(scale * q @ k.T [+ causal mask]) @ v for q [B, Hq, Lq, D], k [B, Hk, Lk, D], v [B, Hk, Lk, Dv]
// with Hq a multiple of Hk (grouped-query attention), fp32/fp16/bf16 of one dtype; the output is
// [B, Hq, Lq, Dv] in that dtype. Causal: query i sees keys j <= i + Lk - Lq (the queries are the
// last Lq positions), as mx.fast.scaled_dot_product_attention's "causal". Or an array mask of shape
// [B, Hq, Lq, Lk] (any strides, so a broadcast view costs nothing): bool keeps the keys where it is
// true, a float mask is added to the scores. Accumulates in fp32.
mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    const std::optional<mx::array>& mask);

class NativeAttention : public mx::Primitive {
 public:
  NativeAttention(mx::Stream stream, float scale, bool causal, bool masked)
      : mx::Primitive(stream), scale_(scale), causal_(causal), masked_(masked) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  const char* name() const override { return "NativeAttention"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  float scale_;
  bool causal_;
  bool masked_;  // a fourth input holds the array mask
};

}  // namespace runtime_native
