import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xpm_train.models.config import TransformerConfig

from .support.tiny import tiny_components


def _model(**params):
    """The tiny transformer with 2 layers of 4 heads, 16 positions and a 50-token vocabulary."""
    parts = tiny_components(model={"n_layers": 2, "n_heads": 4, "max_seq_len": 16, **params})
    return parts["model"].create(vocab_size=50, seed=0)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_logits_shape_and_causality(positions):
    model = _model(positions=positions)
    tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, 50)
    logits = model(tokens)
    assert logits.shape == (2, 12, 50) and logits.dtype == jnp.float32
    changed = tokens.at[:, 8].set((tokens[:, 8] + 1) % 50)
    other = model(changed)
    np.testing.assert_allclose(logits[:, :8], other[:, :8], atol=1e-6)
    assert not np.allclose(logits[:, 8:], other[:, 8:])


def test_tied_and_untied_embeddings():
    tied = nnx.state(_model(tie_embeddings=True), nnx.Param)
    untied = nnx.state(_model(tie_embeddings=False), nnx.Param)
    assert "lm_head" not in tied and "lm_head" in untied


def test_dtypes_and_dropout():
    model = _model(param_dtype="float32", compute_dtype="bfloat16", dropout=0.5)
    tokens = jnp.ones((1, 8), jnp.int32)
    assert model(tokens).dtype == jnp.float32
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    assert all(p.dtype == jnp.float32 for p in params)
    np.testing.assert_array_equal(model(tokens), model(tokens))
    noisy = model(tokens, rngs=nnx.Rngs(dropout=1))
    assert not np.allclose(noisy, model(tokens))


def test_too_long_sequence_and_bad_config():
    with pytest.raises(ValueError, match="exceeds the model's max_seq_len 16"):
        _model()(jnp.ones((1, 17), jnp.int32))
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        TransformerConfig.C(d_model=30, n_heads=4).instance().__validate__()
    with pytest.raises(ValueError, match="positions='alibi' is not one of rope, learned"):
        TransformerConfig.C(positions="alibi").instance().__validate__()
