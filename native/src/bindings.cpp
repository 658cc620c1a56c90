#include <cstring>

#include <nanobind/nanobind.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include "attn.h"
#include "metrics.h"
#include "norm.h"
#include "mlx/version.h"
#include "mm.h"
#include "qmm.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_native, m) {
  m.doc() = "mlx-rpc-runtime native CPU kernels (an MLX extension)";
  // A module built against another MLX than the one loaded would share MLX's C++ types across an
  // ABI it was not compiled for: refuse to load.
  if (std::strcmp(mx::version(), RUNTIME_MLX_VERSION) != 0) {
    throw nb::import_error(
        (std::string("runtime native module was built against MLX ") + RUNTIME_MLX_VERSION +
         " but MLX " + mx::version() + " is loaded; rebuild it (scripts/setup.sh)")
            .c_str());
  }
  m.attr("built_mlx_version") = RUNTIME_MLX_VERSION;
  m.def("isa", &runtime_native::isa, "The quantized kernel in use: 'avx512_vnni', 'avx2' or 'scalar'.");
  m.def("dense_isa", &runtime_native::dense_isa, "The bf16/fp16 matmul kernel in use: 'avx512', 'avx2' or 'scalar'.");
  m.def("threads", &runtime_native::threads, "Threads a matmul is split across.");
  m.def("quantized_matmul", &runtime_native::quantized_matmul, "x"_a, "w"_a, "scales"_a, "biases"_a,
        nb::kw_only(), "group_size"_a = 64, "bits"_a = 4,
        "x @ dequantize(w, scales, biases).T on the CPU (MLX affine format, transpose=True).");
  m.def("matmul", &runtime_native::matmul, "x"_a, "w"_a,
        "x @ w.T on the CPU, w a 2-D bf16 or fp16 [N, K] array (nn.Linear's layout).");
  m.def("attention", &runtime_native::attention, "q"_a, "k"_a, "v"_a, nb::kw_only(), "scale"_a, "causal"_a = false,
        "mask"_a.none() = nb::none(),
        "softmax(scale * q @ k.T [+ causal mask]) @ v on the CPU; q [B, Hq, Lq, D], k/v [B, Hk, Lk, D/Dv].");
  m.def("rms_norm", &runtime_native::rms_norm, "x"_a, "weight"_a.none(), "eps"_a,
        "mx.fast.rms_norm on the CPU (weight of x's dtype, or None).");
  m.def("rope", &runtime_native::rope, "x"_a, "dims"_a, nb::kw_only(), "traditional"_a, "base"_a.none(), "scale"_a,
        "offset"_a = 0, "offsets"_a.none() = nb::none(), "freqs"_a.none() = nb::none(),
        "mx.fast.rope on the CPU: an int offset, or `offsets` (an int array of 1 or B values).");

  // Metric cells: updates run with the GIL released (runtime/metrics/collector.py, docs/metrics.md).
  using runtime_native::CounterCell;
  using runtime_native::HistogramCell;
  nb::class_<CounterCell>(m, "CounterCell")
      .def(nb::init<>())
      .def("inc", &CounterCell::inc, "n"_a = 1.0, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("value", &CounterCell::value);
  nb::class_<HistogramCell>(m, "HistogramCell")
      .def(nb::init<std::vector<double>>(), "bounds"_a)
      .def("observe", &HistogramCell::observe, "v"_a, nb::call_guard<nb::gil_scoped_release>())
      .def("read", &HistogramCell::read)  // builds Python lists: needs the GIL (a scrape, not a hot path)
      .def_prop_ro("bounds", &HistogramCell::bounds);
}
