import jax
import jax.numpy as jnp
from flax import nnx

from xpm_train.data.tokenizers import ByteTokenizer
from xpm_train.inference.generate import GenerationSettings, exact_match, generate

from .support.tiny import tiny_model

TOKENIZER = ByteTokenizer.C().instance()
FOUR, EOS = ord("4"), TOKENIZER.eos_id


class AnswersFour(nnx.Module):
    """A fake model: after '=' it predicts '4', after '4' the end of sequence."""

    def __init__(self):
        self.scale = nnx.Param(jnp.ones(()))

    def __call__(self, tokens, rngs=None):
        next_token = jnp.where(tokens == ord("="), FOUR, jnp.where(tokens == FOUR, EOS, 0))
        return jax.nn.one_hot(next_token, TOKENIZER.vocab_size) * 10 * self.scale


def test_greedy_generation_stops_at_end_of_sequence():
    completions = generate(
        AnswersFour(), TOKENIZER, ["2+2=", "10+7="], GenerationSettings(max_new_tokens=5)
    )
    assert completions == ["4", "4"]


def test_exact_match_counts_correct_answers():
    problems = [("2+2=", "4"), ("1+2=", "3"), ("0+4=", "4"), ("9+9=", "18")]
    assert exact_match(AnswersFour(), TOKENIZER, problems, batch_size=3) == 0.5


def test_sampling_is_seeded_and_prompts_do_not_interfere():
    model = tiny_model()
    sampled = GenerationSettings(max_new_tokens=6, temperature=1.0, seed=3)
    first = generate(model, TOKENIZER, ["1+1=", "22+3="], sampled)
    assert first == generate(model, TOKENIZER, ["1+1=", "22+3="], sampled)
    greedy = GenerationSettings(max_new_tokens=6)
    alone = generate(model, TOKENIZER, ["22+3="], greedy)
    together = generate(model, TOKENIZER, ["1+1=", "22+3="], greedy)
    assert together[1] == alone[0]
