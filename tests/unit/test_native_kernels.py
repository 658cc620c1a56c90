"""The native quantized matmul (native/, runtime/engine/_native*.so) against mx.quantized_matmul.

Tolerances, relative to the output's scale (max |result|):
- fp32 output: |native - mx.quantized_matmul| <= 1e-4 * scale + 1e-4 (both accumulate in fp32, in
  a different order).
- fp16/bf16 output: MLX's CPU path dequantizes and accumulates in the half type, the native kernel in
  fp32 with one rounding at the end, so both are compared with the fp32 truth
  (x.astype(fp32) @ dequantize(fp32 scales).T): native within 2^-9 (fp16) / 2^-7 (bf16) of the scale,
  and never further from the truth than MLX's own result (plus that tolerance).
"""

from __future__ import annotations

import pytest

mx = pytest.importorskip("mlx.core")

from runtime.engine import native  # noqa: E402

nat = native.module()
pytestmark = pytest.mark.skipif(
    nat is None, reason=f"native module unavailable ({native.status()['reason']}); run scripts/setup.sh"
)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOL = {mx.float32: 1e-4, mx.float16: 2.0**-9, mx.bfloat16: 2.0**-6}


def _check(M: int, N: int, K: int, bits: int, gs: int, sdt, xdt, lead: tuple[int, ...] = ()) -> None:
    w = mx.random.normal((N, K)).astype(sdt)
    wq, s, b = mx.quantize(w, group_size=gs, bits=bits)
    x = mx.random.normal((*lead, M, K)).astype(xdt)
    ref = mx.quantized_matmul(x, wq, s, b, transpose=True, group_size=gs, bits=bits)
    out = nat.quantized_matmul(x, wq, s, b, group_size=gs, bits=bits)
    assert out.dtype == ref.dtype  # the promotion of x and scales, as in MLX
    assert out.shape == ref.shape
    ref32, out32 = ref.astype(mx.float32), out.astype(mx.float32)
    if ref.dtype == mx.float32:
        scale = mx.abs(ref32).max().item()
        err = mx.abs(ref32 - out32).max().item()
        assert err <= TOL[mx.float32] * scale + 1e-4, (M, N, K, bits, gs, sdt, xdt, err, scale)
        return
    f32 = mx.float32
    truth = x.astype(f32) @ mx.dequantize(wq, s.astype(f32), b.astype(f32), group_size=gs, bits=bits).T
    scale = mx.abs(truth).max().item()
    err = mx.abs(out32 - truth).max().item()
    mlx_err = mx.abs(ref32 - truth).max().item()
    tol = TOL[ref.dtype] * scale + 1e-4
    assert err <= tol, (M, N, K, bits, gs, sdt, xdt, err, scale)
    assert err <= mlx_err + tol, (M, N, K, bits, gs, sdt, xdt, err, mlx_err)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("gs", [32, 64, 128])
@pytest.mark.parametrize("M,N,K", [(1, 64, 256), (3, 33, 384), (7, 129, 128), (16, 40, 512), (1, 1, 640)])
def test_matches_mlx_fp32(M, N, K, bits, gs):
    if K % gs:
        pytest.skip("K must be a multiple of the group size")
    _check(M, N, K, bits, gs, mx.float32, mx.float32)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("sdt", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("xdt", [mx.float32, mx.float16, mx.bfloat16])
def test_dtypes(bits, sdt, xdt):
    _check(5, 97, 256, bits, 64, sdt, xdt)


def test_k_not_multiple_of_block_uses_scalar_path():
    # 4 bits, group 32, K = 96: K is not a multiple of the 64-value AVX2 block.
    _check(3, 17, 96, 4, 32, mx.float32, mx.float32)


def test_leading_dims_and_lazy_graph():
    _check(4, 48, 128, 4, 64, mx.float16, mx.float32, lead=(2,))
    w = mx.random.normal((32, 128))
    wq, s, b = mx.quantize(w, group_size=64, bits=4)
    x = mx.random.normal((2, 128))
    y = mx.sum(nat.quantized_matmul(x * 2, wq, s, b, group_size=64, bits=4) + 1)  # inside a graph
    ref = mx.sum(mx.quantized_matmul(x * 2, wq, s, b, group_size=64, bits=4) + 1)
    assert abs(y.item() - ref.item()) <= 1e-3 * max(1.0, abs(ref.item()))


def test_large_threaded_shape():
    _check(2, 2816, 1024, 4, 64, mx.bfloat16, mx.float32)


def test_bad_input_raises():
    wq, s, b = mx.quantize(mx.random.normal((8, 128)), group_size=64, bits=4)
    with pytest.raises(ValueError):
        nat.quantized_matmul(mx.zeros((1, 64)), wq, s, b, group_size=64, bits=4)
    with pytest.raises(ValueError):
        nat.quantized_matmul(mx.zeros((1, 128)), wq, s, b, group_size=64, bits=3)


def test_status_and_version():
    st_ = native.status()
    assert st_["available"] is True and st_["version"] == mx.__version__
    assert nat.built_mlx_version == mx.__version__
    assert nat.isa() in ("avx512_vnni", "avx2", "scalar")


@settings(max_examples=40, deadline=None)
@given(
    M=st.integers(1, 9),
    N=st.integers(1, 70),
    groups=st.integers(1, 6),
    bits=st.sampled_from([4, 8]),
    gs=st.sampled_from([32, 64, 128]),
    xdt=st.sampled_from(["float32", "float16", "bfloat16"]),
)
def test_property_shapes(M, N, groups, bits, gs, xdt):
    _check(M, N, groups * gs, bits, gs, mx.float16, getattr(mx, xdt))
