"""The window's products (csrc/gemm.h: rnncore_tile_product): a tile's whole K on packed
copies, in chunks of RNNCORE_GEMM_KC, against numpy and against the micro-kernel's one
pass (chunking must not change a bit), with transposed left operands (the weight
gradients') and column biases."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnncore import _cells

KC = 256   # csrc/gemm.h's RNNCORE_GEMM_KC: products with K above it run in chunks

shapes = st.tuples(st.integers(1, 120), st.sampled_from([1, 7, 255, 256, 257, 600]),
                   st.integers(1, 300))


def operands(shape, dtype, transposed, seed):
    M, K, N = shape
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if transposed else (M, K)).astype(dtype)
    return (a.T if transposed else a), rng.standard_normal((K, N)).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       transposed=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_a_tile_product_is_the_product(shape, dtype, transposed, seed):
    a, b = operands(shape, dtype, transposed, seed)
    bias = np.random.default_rng(seed + 1).standard_normal(b.shape[1]).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64) + bias
    tol = 1e-12 if dtype == np.float64 else 1e-5
    got = _cells.tile_matmul(a, b, bias)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(b.shape[0]))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       transposed=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_chunks_and_packing_give_the_bits_of_one_pass(shape, dtype, transposed, seed):
    a, b = operands(shape, dtype, transposed, seed)
    one_pass = _cells.matmul(a, b)            # the micro-kernel over the whole K at once
    np.testing.assert_array_equal(_cells.tile_matmul(a, b), one_pass)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_alone_is_the_row_in_the_tile(dtype):
    a, b = operands((37, 2 * KC + 11, 70), dtype, True, 3)
    whole = _cells.tile_matmul(a, b)
    for i in (0, 5, 36):
        np.testing.assert_array_equal(_cells.tile_matmul(a[i:i + 1], b)[0], whole[i])


def test_an_empty_sum_is_zero_plus_the_bias():
    bias = np.arange(5.0)
    got = _cells.tile_matmul(np.zeros((3, 0)), np.zeros((0, 5)), bias)
    np.testing.assert_array_equal(got, np.broadcast_to(bias, (3, 5)))
