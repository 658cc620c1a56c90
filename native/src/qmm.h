// Quantized matmul for MLX's affine format on the CPU, as an MLX custom primitive.
#pragma once

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace runtime_native {

// x @ dequantize(w, scales, biases, group_size, bits).T, the same as
// mx.quantized_matmul(x, w, scales, biases, transpose=True, group_size, bits, mode="affine"),
// always evaluated on the CPU stream.
mx::array quantized_matmul(
    const mx::array& x,
    const mx::array& w,
    const mx::array& scales,
    const mx::array& biases,
    int group_size,
    int bits);

// "avx512_vnni", "avx2" or "scalar": the kernel that runs (RUNTIME_NATIVE_ISA=avx2|scalar caps it).
const char* isa();
int threads();

class NativeQuantizedMatmul : public mx::Primitive {
 public:
  NativeQuantizedMatmul(mx::Stream stream, int group_size, int bits)
      : mx::Primitive(stream), group_size_(group_size), bits_(bits) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  const char* name() const override { return "NativeQuantizedMatmul"; }
  bool is_equivalent(const mx::Primitive& other) const override;

 private:
  int group_size_;
  int bits_;
};

}  // namespace runtime_native
