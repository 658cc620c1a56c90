// RMS norm and rotary position embedding on the CPU, as MLX custom primitives. MLX's CPU backend
// runs mx.fast.rms_norm and mx.fast.rope as their fallbacks, ~9 and ~25 small graph nodes each; one
// primitive each cuts a 12-layer decode step's graph by ~800 nodes (see docs/native.md).
#pragma once

#include <optional>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace runtime_native {

// mx.fast.rms_norm for x [..., D] and weight [D] (or none) of x's float dtype: the row is normalized
// in fp32, rounded to x's type, then multiplied by the weight and rounded again (MLX's own order).
mx::array rms_norm(const mx::array& x, const std::optional<mx::array>& weight, float eps);

// mx.fast.rope for x [B, ..., T, D] (ndim >= 3) of a float dtype: the first `dims` features of each
// position t rotated by (offset + t) * scale * inv_freq, inv_freq = base^(-i/(dims/2)) or 1/freqs;
// `traditional` rotates pairs (2i, 2i+1), else (i, i + dims/2). offset: an int or an int array of
// 1 or B elements (one per batch row).
mx::array rope(const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale,
               int offset, const std::optional<mx::array>& offsets, const std::optional<mx::array>& freqs);

class NativeRMSNorm : public mx::Primitive {
 public:
  NativeRMSNorm(mx::Stream stream, float eps, bool weighted) : mx::Primitive(stream), eps_(eps), weighted_(weighted) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "NativeRMSNorm"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  float eps_;
  bool weighted_;
};

class NativeRoPE : public mx::Primitive {
 public:
  NativeRoPE(mx::Stream stream, int dims, bool traditional, float base, float scale, int offset, bool offsets,
             bool freqs)
      : mx::Primitive(stream), dims_(dims), traditional_(traditional), base_(base), scale_(scale),
        offset_(offset), offsets_(offsets), freqs_(freqs) {}
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  const char* name() const override { return "NativeRoPE"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  int dims_;
  bool traditional_;
  float base_, scale_;
  int offset_;
  bool offsets_, freqs_;  // whether the inputs hold an offsets array / a freqs array
};

}  // namespace runtime_native
