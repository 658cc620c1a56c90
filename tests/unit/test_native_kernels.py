"""The native kernels (native/, runtime/engine/_native*.so): the quantized matmul against
mx.quantized_matmul, and the bf16/fp16-weight matmul against `x @ w.T`.

Tolerances, relative to the output's scale (max |result|):
- fp32 output: |native - mx.quantized_matmul| <= 1e-4 * scale + 1e-4 (both accumulate in fp32, in
  a different order).
- fp16/bf16 output: MLX's CPU path dequantizes and accumulates in the half type, the native kernel in
  fp32 with one rounding at the end, so both are compared with the fp32 truth
  (x.astype(fp32) @ dequantize(fp32 scales).T): native within 2^-9 (fp16) / 2^-7 (bf16) of the scale,
  and never further from the truth than MLX's own result (plus that tolerance).

The dense matmul (bf16/fp16 weights) is compared with the fp32 truth x.astype(fp32) @ w.astype(fp32).T:
it accumulates in fp32 and rounds once, so it is within 1e-5 * scale for fp32 output, and within one
rounding of the output type (unit roundoff 2^-11 fp16, 2^-8 bf16) for half outputs: 2^-10 / 2^-7 of the
scale is allowed; and never further from the truth than MLX's own `x @ w.T` plus that tolerance.
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


# ---------------------------------------------------------------- dense (bf16/fp16 weights) matmul
DENSE_TOL = {mx.float32: 1e-5, mx.float16: 2.0**-10, mx.bfloat16: 2.0**-7}


def _check_dense(M: int, N: int, K: int, wdt, xdt, lead: tuple[int, ...] = ()) -> None:
    w = mx.random.normal((N, K)).astype(wdt)
    x = mx.random.normal((*lead, M, K)).astype(xdt)
    ref = x @ w.T
    out = nat.matmul(x, w)
    assert out.dtype == ref.dtype  # MLX's promotion of x and w
    assert out.shape == ref.shape
    f32 = mx.float32
    truth = x.astype(f32) @ w.astype(f32).T
    scale = mx.abs(truth).max().item()
    err = mx.abs(out.astype(f32) - truth).max().item()
    mlx_err = mx.abs(ref.astype(f32) - truth).max().item()
    tol = DENSE_TOL[out.dtype] * scale + 1e-5
    assert err <= tol, (M, N, K, wdt, xdt, err, scale)
    assert err <= mlx_err + tol, (M, N, K, wdt, xdt, err, mlx_err)


# K: whole 32/16-value blocks, blocks plus a tail, and tails only; M and N odd and under the tiles.
DENSE_SHAPES = [
    (1, 64, 256),
    (3, 33, 100),
    (7, 129, 128),
    (5, 17, 33),
    (1, 1, 1),
    (9, 70, 1030),
    (4, 5, 15),
    (2, 3, 48),
]


@pytest.mark.parametrize("wdt", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("xdt", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("M,N,K", DENSE_SHAPES)
def test_dense_matches_fp32_truth(M, N, K, wdt, xdt):
    _check_dense(M, N, K, wdt, xdt)


def test_dense_threaded_decode_and_prefill_shapes():
    _check_dense(1, 2816, 1024, mx.bfloat16, mx.bfloat16)  # decode: columns split across the pool
    _check_dense(67, 300, 1024, mx.bfloat16, mx.float32)  # prefill: x prepared on the pool, row tiles + rest
    _check_dense(13, 257, 520, mx.float16, mx.float16)


def test_dense_leading_dims_one_dim_and_lazy_graph():
    _check_dense(3, 40, 96, mx.bfloat16, mx.float32, lead=(2, 2))
    w = mx.random.normal((24, 64)).astype(mx.bfloat16)
    v = mx.random.normal((64,))
    assert nat.matmul(v, w).shape == (24,)
    x = mx.random.normal((3, 64))
    y = mx.sum(nat.matmul(x * 2, w) + 1)  # inside a graph
    ref = mx.sum((x * 2) @ w.T + 1)
    assert abs(y.item() - ref.item()) <= 1e-3 * max(1.0, abs(ref.item()))


def test_dense_empty_sum_gives_zeros():
    out = nat.matmul(mx.zeros((2, 0)), mx.zeros((3, 0), dtype=mx.bfloat16))
    assert out.shape == (2, 3) and mx.array_equal(out, mx.zeros((2, 3)))


def test_dense_bad_input_raises_a_clear_error():
    w = mx.zeros((8, 64), dtype=mx.bfloat16)
    with pytest.raises(ValueError, match="features"):
        nat.matmul(mx.zeros((1, 32)), w)
    with pytest.raises(ValueError, match="bf16 or fp16"):
        nat.matmul(mx.zeros((1, 64)), mx.zeros((8, 64)))  # fp32 weights: MLX's matmul serves them
    with pytest.raises(ValueError, match="bf16 or fp16"):
        nat.matmul(mx.zeros((1, 64)), mx.zeros((2, 8, 64), dtype=mx.bfloat16))
    with pytest.raises(ValueError, match="x must be"):
        nat.matmul(mx.zeros((1, 64), dtype=mx.int32), w)


def test_dense_isa_reported():
    assert nat.dense_isa() in ("avx512", "avx2", "scalar")


@settings(max_examples=40, deadline=None)
@given(
    M=st.integers(1, 9),
    N=st.integers(1, 70),
    K=st.integers(1, 300),
    wdt=st.sampled_from(["bfloat16", "float16"]),
    xdt=st.sampled_from(["float32", "float16", "bfloat16"]),
)
def test_dense_property_shapes(M, N, K, wdt, xdt):
    _check_dense(M, N, K, getattr(mx, wdt), getattr(mx, xdt))
