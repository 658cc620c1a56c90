"""The native layer ops (native/src/attn.cpp, norm.cpp) and the mx.fast wrappers that route to them
(runtime/engine/native.py, `install_layer_ops`).

Truth: MLX's own mx.fast functions on fp32 inputs. Attention accumulates in fp32 and rounds once, so
its half outputs are within one rounding of the output (2^-8 bf16, 2^-11 fp16, of the output's scale)
plus the inputs' own rounding; rms_norm follows MLX's order of roundings and matches mx.fast.rms_norm
within a rounding of the output type; rope computes in fp32 where MLX's fallback rounds each
product, so it is within one ulp of the half type at the values' scale.
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

F32 = mx.float32
HALF_TOL = {mx.float32: 1e-5, mx.float16: 2.0**-9, mx.bfloat16: 2.0**-6}


def _attention_case(B, Hq, Hk, Lq, Lk, D, Dv, dtype, causal) -> None:
    q = mx.random.normal((B, Hq, Lq, D)).astype(dtype)
    k = mx.random.normal((B, Hk, Lk, D)).astype(dtype)
    v = mx.random.normal((B, Hk, Lk, Dv)).astype(dtype)
    scale = D**-0.5
    truth = mx.fast.scaled_dot_product_attention(
        q.astype(F32), k.astype(F32), v.astype(F32), scale=scale, mask="causal" if causal else None
    )
    out = nat.attention(q, k, v, scale=scale, causal=causal)
    assert out.dtype == dtype and out.shape == (B, Hq, Lq, Dv)
    err = mx.abs(out.astype(F32) - truth).max().item()
    assert err <= HALF_TOL[dtype] * max(1.0, mx.abs(truth).max().item()), (B, Hq, Hk, Lq, Lk, D, dtype, causal, err)


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "B,Hq,Hk,Lq,Lk,D,Dv",
    [
        (1, 16, 4, 1, 37, 64, 64),
        (1, 16, 4, 96, 96, 64, 64),
        (2, 6, 3, 5, 9, 32, 48),
        (1, 8, 8, 33, 50, 80, 80),
        (1, 4, 2, 1, 1, 128, 128),
    ],
)
def test_attention_matches_mlx_in_fp32_with_grouped_heads_and_a_causal_mask(B, Hq, Hk, Lq, Lk, D, Dv, dtype, causal):
    _attention_case(B, Hq, Hk, Lq, Lk, D, Dv, dtype, causal)


def test_attention_reads_a_cache_slice_in_place_and_a_transposed_view():
    cache = mx.random.normal((1, 4, 300, 64)).astype(mx.bfloat16)
    k, v = cache[:, :, :100, :], cache[:, :, 100:200, :]  # views with a gap between heads
    q = mx.random.normal((1, 16, 3, 64)).astype(mx.bfloat16)
    truth = mx.fast.scaled_dot_product_attention(
        q.astype(F32), k.astype(F32), v.astype(F32), scale=0.125, mask="causal"
    )
    out = nat.attention(q, k, v, scale=0.125, causal=True).astype(F32)
    assert mx.abs(out - truth).max().item() <= 2.0**-6 * max(1.0, mx.abs(truth).max().item())
    kt = mx.random.normal((1, 4, 64, 50)).transpose(0, 1, 3, 2)  # last stride is not 1
    q32 = q.astype(F32)
    truth = mx.fast.scaled_dot_product_attention(q32, kt, kt, scale=0.125)
    assert mx.abs(nat.attention(q32, kt, kt, scale=0.125) - truth).max().item() < 1e-5


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_attention_with_a_bool_or_additive_mask_array_matches_mlx(dtype):
    q = mx.random.normal((2, 8, 3, 32))
    k = mx.random.normal((2, 4, 10, 32))
    v = mx.random.normal((2, 4, 10, 32))
    masks = [
        mx.random.uniform(shape=(2, 1, 3, 10)) > 0.3,  # kept keys, per batch row (left padding)
        mx.random.normal((1, 8, 1, 10)),  # added to the scores
        mx.full((3, 10), -1.5),
    ]
    for mask in masks:
        truth = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.2, mask=mask)
        view = mx.broadcast_to(mask, (2, 8, 3, 10))
        out = nat.attention(q.astype(dtype), k.astype(dtype), v.astype(dtype), scale=0.2, mask=view)
        assert mx.abs(out.astype(F32) - truth).max().item() <= HALF_TOL[dtype] * max(1.0, mx.abs(truth).max().item())
    with pytest.raises(ValueError, match="shape"):
        nat.attention(q, k, v, scale=0.2, mask=mx.zeros((3, 10)))
    with pytest.raises(ValueError, match="not both"):
        nat.attention(q, k, v, scale=0.2, causal=True, mask=mx.zeros((2, 8, 3, 10)))


def test_attention_refuses_bad_shapes_and_dtypes_with_a_clear_error():
    q = mx.zeros((1, 6, 2, 32))
    k = mx.zeros((1, 4, 5, 32))
    cases = [
        (q, k, k, "multiple"),
        (q, mx.zeros((1, 3, 5, 16)), mx.zeros((1, 3, 5, 16)), "head dim"),
        (q.astype(mx.float16), mx.zeros((1, 3, 5, 32)), mx.zeros((1, 3, 5, 32)), "dtype"),
        (mx.zeros((6, 2, 32)), k, k, "4-D"),
    ]
    for qq, kk, vv, words in cases:
        with pytest.raises(ValueError, match=words):
            nat.attention(qq, kk, vv, scale=1.0)
    with pytest.raises(ValueError, match="causal"):
        nat.attention(mx.zeros((1, 3, 9, 32)), mx.zeros((1, 3, 5, 32)), mx.zeros((1, 3, 5, 32)), scale=1.0, causal=True)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 2),
    Hk=st.integers(1, 3),
    group=st.integers(1, 3),
    Lq=st.integers(1, 9),
    extra=st.integers(0, 20),
    D=st.sampled_from([8, 16, 24, 64, 72]),
    dtype=st.sampled_from([mx.float32, mx.bfloat16]),
    causal=st.booleans(),
)
def test_attention_property_any_shape_matches_mlx(B, Hk, group, Lq, extra, D, dtype, causal):
    _attention_case(B, Hk * group, Hk, Lq, Lq + extra, D, D, dtype, causal)


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_rms_norm_matches_mlx_within_a_rounding_with_and_without_weight_and_on_a_view(dtype):
    # The same order of roundings as MLX's fallback; the fp32 sum of squares may differ in its last
    # bit, which can move a half-precision result by one of its roundings (twice: norm, then weight).
    rel = {mx.float32: 1e-6, mx.float16: 2.0**-9, mx.bfloat16: 2.0**-6}[dtype]

    def close(out: mx.array, ref: mx.array) -> bool:
        diff = mx.abs(out.astype(F32) - ref.astype(F32))
        return bool(mx.all(diff <= rel * mx.abs(ref.astype(F32)) + 1e-6).item())

    x = mx.random.normal((2, 5, 96)).astype(dtype)
    w = (1 + 0.1 * mx.random.normal((96,))).astype(dtype)
    for weight in (w, None):
        out = nat.rms_norm(x, weight, 1e-5)
        assert out.dtype == dtype
        assert close(out, mx.fast.rms_norm(x, weight, 1e-5))
    view = mx.random.normal((96, 7)).astype(dtype).T
    assert close(nat.rms_norm(view, w, 1e-6), mx.fast.rms_norm(view, w, 1e-6))
    with pytest.raises(ValueError, match="weight"):
        nat.rms_norm(x, mx.ones((95,), dtype=dtype), 1e-5)


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("shape", [(1, 16, 1, 64), (2, 4, 9, 64), (1, 7, 32), (2, 3, 4, 5, 16)])
@pytest.mark.parametrize("traditional", [False, True])
def test_rope_matches_mlx_for_offsets_partial_dims_and_layouts(dtype, shape, traditional):
    x = mx.random.normal(shape).astype(dtype)
    ulp = {mx.float32: 1e-5, mx.float16: 2.0**-8, mx.bfloat16: 2.0**-5}[dtype]
    scale_of = max(1.0, mx.abs(x.astype(F32)).max().item())
    for dims in {shape[-1], shape[-1] // 2}:
        for offset in (0, 37):
            ref = mx.fast.rope(x, dims, traditional=traditional, base=10000.0, scale=1.0, offset=offset)
            out = nat.rope(x, dims, traditional=traditional, base=10000.0, scale=1.0, offset=offset)
            assert out.dtype == dtype
            assert mx.abs(out.astype(F32) - ref.astype(F32)).max().item() <= ulp * scale_of, (dims, offset)
    offsets = mx.array([3, 11]) if shape[0] == 2 else mx.array([5])
    freqs = mx.arange(1, shape[-1] // 2 + 1).astype(F32)
    ref = mx.fast.rope(x, shape[-1], traditional=traditional, base=None, scale=0.5, offset=offsets, freqs=freqs)
    out = nat.rope(x, shape[-1], traditional=traditional, base=None, scale=0.5, offsets=offsets, freqs=freqs)
    assert mx.abs(out.astype(F32) - ref.astype(F32)).max().item() <= ulp * scale_of


def test_rope_refuses_odd_dims_and_a_missing_base_with_a_clear_error():
    x = mx.zeros((1, 2, 3, 8))
    with pytest.raises(ValueError, match="even"):
        nat.rope(x, 7, traditional=False, base=10000.0, scale=1.0)
    with pytest.raises(ValueError, match="base and freqs"):
        nat.rope(x, 8, traditional=False, base=None, scale=1.0)


def _graph(out: mx.array) -> str:
    import io

    text = io.StringIO()
    mx.export_to_dot(text, out)
    return text.getvalue()


def test_wrapped_mx_fast_serves_half_calls_on_the_cpu_and_leaves_the_rest_to_mlx(monkeypatch):
    native.install_layer_ops()
    monkeypatch.setattr(native, "_layer_ops_on", True)
    h = mx.random.normal((1, 4, 6, 32)).astype(mx.bfloat16)
    keep = mx.random.uniform(shape=(1, 1, 6, 6)) > 0.2
    served = [
        mx.fast.scaled_dot_product_attention(h, h, h, scale=0.2, mask="causal"),
        mx.fast.scaled_dot_product_attention(h, h, h, scale=0.2, mask=keep),  # a batch's padding mask
        mx.fast.rms_norm(h, mx.ones((32,), dtype=mx.bfloat16), 1e-5),
        mx.fast.rope(h, 32, traditional=False, base=10000.0, scale=1.0, offset=3),
    ]
    for out, name in zip(served, ("NativeAttention", "NativeAttention", "NativeRMSNorm", "NativeRoPE"), strict=True):
        assert name in _graph(out)
    f = h.astype(F32)
    kept = [
        mx.fast.scaled_dot_product_attention(f, f, f, scale=0.2),  # fp32: MLX's BLAS path is good
        mx.fast.scaled_dot_product_attention(h, h, h, scale=0.2, sinks=mx.zeros((4,), dtype=mx.bfloat16)),  # sinks
        mx.fast.rms_norm(f, None, 1e-5),
        mx.fast.rope(f, 32, traditional=False, base=10000.0, scale=1.0, offset=3),
    ]
    for out in kept:
        assert "Native" not in _graph(out)
    monkeypatch.setattr(native, "_layer_ops_on", False)  # unroute(): MLX's functions again
    assert "Native" not in _graph(mx.fast.rms_norm(h, None, 1e-5))


def test_quantized_and_dense_matmuls_read_a_transposed_x_in_place():
    x = mx.random.normal((2, 256, 3)).astype(mx.bfloat16).transpose(0, 2, 1)  # not row-contiguous
    w = mx.random.normal((40, 256))
    wq, s, b = mx.quantize(w, group_size=64, bits=4)
    truth = x.astype(F32) @ mx.dequantize(wq, s, b, group_size=64, bits=4).T
    out = nat.quantized_matmul(x, wq, s, b, group_size=64, bits=4).astype(F32)
    assert mx.abs(out - truth).max().item() <= 2.0**-6 * mx.abs(truth).max().item()
    wd = w.astype(mx.bfloat16)
    truth = x.astype(F32) @ wd.astype(F32).T
    assert mx.abs(nat.matmul(x, wd).astype(F32) - truth).max().item() <= 2.0**-7 * mx.abs(truth).max().item()
