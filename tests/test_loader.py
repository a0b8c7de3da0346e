import numpy as np
import pytest

from xpm_train.data.loader import Prefetcher, StepBatches, eval_batches


def _order(batches: StepBatches, steps: range) -> np.ndarray:
    return np.concatenate([batches(step)["tokens"].reshape(-1, 3)[:, 0] // 3 for step in steps])


def test_batches_depend_only_on_step_and_cover_each_epoch():
    blocks = {"tokens": np.arange(10 * 3, dtype=np.int32).reshape(10, 3)}
    batches = StepBatches(blocks, batch_size=4, accum_steps=2, seed=7)
    again = StepBatches(blocks, batch_size=4, accum_steps=2, seed=7)
    assert batches(3)["tokens"].shape == (2, 2, 3)
    np.testing.assert_array_equal(batches(3)["tokens"], again(3)["tokens"])
    np.testing.assert_array_equal(batches(1)["tokens"], again(1)["tokens"])
    seen = _order(batches, range(5))  # 20 samples: 2 epochs of 10
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:])
    other = StepBatches(blocks, batch_size=4, accum_steps=2, seed=8)
    assert not np.array_equal(_order(other, range(1)), seen[:4])


def test_examples_can_change_every_epoch():
    def examples(epoch: int) -> dict:
        return {"tokens": np.arange(6 * 3, dtype=np.int32).reshape(6, 3) + 100 * epoch}

    batches = StepBatches(examples, batch_size=4, accum_steps=1, seed=0)
    step_1 = batches(1)["tokens"].reshape(-1, 3)  # samples 4..7: two of each epoch
    assert sorted(step_1[:, 0] // 100) == [0, 0, 1, 1]


def test_eval_batches_pad_and_mask_the_last_batch():
    arrays = {"tokens": np.ones((5, 4), dtype=np.int32), "mask": np.ones((5, 3), np.float32)}
    pad = {"tokens": 9, "mask": 0.0}
    batches = eval_batches(arrays, batch_size=2, max_batches=10, pad=pad)
    assert len(batches) == 3
    assert batches[-1]["mask"].sum() == 3 and batches[-1]["tokens"][1, 0] == 9
    assert len(eval_batches(arrays, batch_size=2, max_batches=1, pad=pad)) == 1


def test_prefetcher_yields_in_order_and_forwards_errors():
    assert list(Prefetcher(lambda step: {"s": step}, 3, 7)) == [{"s": s} for s in range(3, 7)]

    def failing(step: int) -> dict:
        if step == 2:
            raise ValueError("bad block")
        return {"s": step}

    prefetcher = Prefetcher(failing, 0, 5)
    assert next(prefetcher) == {"s": 0} and next(prefetcher) == {"s": 1}
    with pytest.raises(ValueError, match="bad block"):
        next(prefetcher)
    prefetcher.close()
