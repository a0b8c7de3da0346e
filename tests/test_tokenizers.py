import numpy as np

from xpm_train.data.tokenizers import ByteTokenizer


def test_round_trip_with_unicode():
    tokenizer = ByteTokenizer.C().instance()
    text = "17+25=42 — café ☕"
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32
    assert ids.max() < 256
    assert tokenizer.decode(ids) == text


def test_special_tokens_are_outside_bytes_and_dropped_by_decode():
    tokenizer = ByteTokenizer.C().instance()
    assert tokenizer.vocab_size == 258
    assert {tokenizer.eos_id, tokenizer.pad_id} == {256, 257}
    ids = np.concatenate([tokenizer.encode("ab"), [tokenizer.eos_id, tokenizer.pad_id]])
    assert tokenizer.decode(ids) == "ab"
