import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xpm_train.data.pairs import encode_pairs
from xpm_train.data.preferences import PreferencePair
from xpm_train.data.tokenizers import ByteTokenizer
from xpm_train.objectives.dpo import DirectPreference, dpo_losses, sequence_logps

from .support.tiny import tiny_model

TOKENIZER = ByteTokenizer.C().instance()


def numpy_dpo(
    logits_pc,
    logits_pr,
    logits_rc,
    logits_rr,
    targets_c,
    targets_r,
    mask_c,
    mask_r,
    beta,
    smoothing,
):
    """An independent implementation of the DPO formula (TRL's sigmoid loss)."""

    def logps(logits, targets, mask):
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        rows = np.arange(logits.shape[0])[:, None]
        cols = np.arange(logits.shape[1])[None, :]
        return (log_probs[rows, cols, targets] * mask).sum(-1)

    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    pc, pr = logps(logits_pc, targets_c, mask_c), logps(logits_pr, targets_r, mask_r)
    rc, rr = logps(logits_rc, targets_c, mask_c), logps(logits_rr, targets_r, mask_r)
    h = (pc - rc) - (pr - rr)
    loss = (-(1 - smoothing) * log_sigmoid(beta * h) - smoothing * log_sigmoid(-beta * h)).mean()
    return loss, beta * (pc - rc), beta * (pr - rr)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_and_rewards_match_numpy(smoothing):
    rng = np.random.default_rng(0)
    shape = (6, 7, 13)
    logits = [rng.normal(size=shape).astype(np.float32) * 2 for _ in range(4)]
    targets = [rng.integers(0, 13, shape[:2]) for _ in range(2)]
    masks = [(rng.random(shape[:2]) > 0.3).astype(np.float32) for _ in range(2)]
    expected, chosen, rejected = numpy_dpo(*logits, *targets, *masks, 0.3, smoothing)
    pc = sequence_logps(jnp.asarray(logits[0]), jnp.asarray(targets[0]), jnp.asarray(masks[0]))
    pr = sequence_logps(jnp.asarray(logits[1]), jnp.asarray(targets[1]), jnp.asarray(masks[1]))
    rc = sequence_logps(jnp.asarray(logits[2]), jnp.asarray(targets[0]), jnp.asarray(masks[0]))
    rr = sequence_logps(jnp.asarray(logits[3]), jnp.asarray(targets[1]), jnp.asarray(masks[1]))
    losses, got_chosen, got_rejected = dpo_losses(pc, pr, rc, rr, 0.3, smoothing)
    np.testing.assert_allclose(float(losses.mean()), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_chosen, chosen, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_rejected, rejected, rtol=1e-5, atol=1e-5)


def test_logits_at_prompt_positions_do_not_matter():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 6, 9)).astype(np.float32)
    targets = rng.integers(0, 9, (2, 6))
    mask = np.zeros((2, 6), np.float32)
    mask[:, 3:] = 1.0  # the first 3 target positions belong to the prompt
    changed = logits.copy()
    changed[:, :3] = rng.normal(size=(2, 3, 9)) * 10
    np.testing.assert_allclose(
        sequence_logps(logits, targets, mask), sequence_logps(changed, targets, mask), rtol=1e-6
    )


def test_encoding_scores_completion_tokens_only():
    arrays = encode_pairs([PreferencePair("1+2=", "3", "40")], TOKENIZER, seq_len=10)
    chosen = arrays["chosen"][0]
    assert chosen[0] == TOKENIZER.eos_id and TOKENIZER.decode(chosen) == "1+2=3"
    assert chosen[6] == TOKENIZER.eos_id and chosen[7] == TOKENIZER.pad_id
    # [eos] 1 + 2 = 3 [eos]: targets are tokens[1:]; "3" and the final eos are targets 5 and 6
    assert arrays["chosen_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert arrays["rejected_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]


def _pair_batch(pairs, seq_len=12):
    return {k: jnp.asarray(v) for k, v in encode_pairs(pairs, TOKENIZER, seq_len).items()}


def test_loss_is_log_two_when_policy_equals_reference():
    model = tiny_model()
    graphdef, params = nnx.split(model, nnx.Param)
    pairs = [PreferencePair(f"{a}+{a}=", str(2 * a), str(2 * a + 1)) for a in range(5)]
    batch = _pair_batch(pairs)
    out = DirectPreference(graphdef, beta=0.1, label_smoothing=0.0)(model, batch, params, None)
    assert float(out.weight) == 5
    assert abs(float(out.loss_sum) / 5 - math.log(2)) < 1e-5
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        assert abs(float(out.metric_sums[name])) < 1e-5
    assert float(out.metric_sums["logps/chosen"]) < 0


def test_padded_pairs_do_not_count_and_gradient_flows_to_policy_only():
    policy, reference = tiny_model(seed=0), tiny_model(seed=1)
    graphdef, params = nnx.split(policy, nnx.Param)
    ref_graphdef, ref_params = nnx.split(reference, nnx.Param)
    pairs = [PreferencePair("2+2=", "4", "5"), PreferencePair("3+3=", "6", "7")]
    batch = _pair_batch(pairs)
    padded = dict(batch)
    padded["weight"] = jnp.asarray([1.0, 0.0])
    objective = DirectPreference(ref_graphdef, beta=0.5, label_smoothing=0.0)
    single = objective(policy, _pair_batch(pairs[:1]), ref_params, None)
    out = objective(policy, padded, ref_params, None)
    np.testing.assert_allclose(float(out.loss_sum), float(single.loss_sum), rtol=1e-5)

    def loss(params, ref_params):
        return objective(nnx.merge(graphdef, params), batch, ref_params, None).loss_sum

    policy_grad, reference_grad = jax.grad(loss, argnums=(0, 1))(params, ref_params)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(policy_grad)) > 0
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(reference_grad)) == 0


def test_rpo_adds_the_chosen_mean_token_nll():
    policy, reference = tiny_model(seed=0), tiny_model(seed=1)
    ref_graphdef, ref_params = nnx.split(reference, nnx.Param)
    pairs = [PreferencePair("2+2=", "4", "5"), PreferencePair("13+3=", "16", "15")]
    batch = _pair_batch(pairs)
    plain = DirectPreference(ref_graphdef, beta=0.5, label_smoothing=0.0)
    rpo = DirectPreference(ref_graphdef, beta=0.5, label_smoothing=0.0, rpo_alpha=2.0)
    base, out = plain(policy, batch, ref_params, None), rpo(policy, batch, ref_params, None)
    logits = policy(batch["chosen"][:, :-1])
    logps = sequence_logps(logits, batch["chosen"][:, 1:], batch["chosen_mask"])
    nll = -logps / batch["chosen_mask"].sum(axis=-1)  # "4"+eos: 2 tokens, "16"+eos: 3
    np.testing.assert_allclose(float(out.metric_sums["nll_loss"]), float(nll.sum()), rtol=1e-5)
    np.testing.assert_allclose(
        float(out.loss_sum), float(base.loss_sum) + 2.0 * float(nll.sum()), rtol=1e-5
    )
    assert "nll_loss" not in base.metric_sums
