// Matmul with bf16/fp16 (unquantized) weights on the CPU, as an MLX custom primitive.
#pragma once

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace runtime_native {

// x @ w.T with w a 2-D bf16 or fp16 [N, K] array and x fp32/fp16/bf16 of shape [..., K]; the
// output dtype is MLX's promotion of the two. Always evaluated on the CPU stream.
mx::array matmul(const mx::array& x, const mx::array& w);

// The kernel the dense matmul runs: "avx512", "avx2" or "scalar" (RUNTIME_NATIVE_ISA caps it too).
const char* dense_isa();

class NativeMatmul : public mx::Primitive {
 public:
  explicit NativeMatmul(mx::Stream stream) : mx::Primitive(stream) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  const char* name() const override { return "NativeMatmul"; }
  bool is_equivalent(const mx::Primitive&) const override { return true; }
};

}  // namespace runtime_native
