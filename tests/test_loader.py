import numpy as np
import pytest

from xpm_train.data.loader import Prefetcher, StepBatches, eval_batches


def test_batches_depend_only_on_step_and_cover_each_epoch():
    blocks = {"tokens": np.arange(10 * 3, dtype=np.int32).reshape(10, 3)}
    batches = StepBatches(blocks, batch_size=4, accum_steps=2, seed=7)
    again = StepBatches(blocks, batch_size=4, accum_steps=2, seed=7)
    assert batches(3)["tokens"].shape == (2, 2, 3)
    np.testing.assert_array_equal(batches(3)["tokens"], again(3)["tokens"])
    np.testing.assert_array_equal(batches(1)["tokens"], again(1)["tokens"])
    first_epoch = np.concatenate([batches.indices(s) for s in range(5)])  # 20 samples, 2 epochs
    assert sorted(first_epoch[:10]) == list(range(10))
    assert sorted(first_epoch[10:]) == list(range(10))
    assert not np.array_equal(first_epoch[:10], first_epoch[10:])
    other = StepBatches(blocks, batch_size=4, accum_steps=2, seed=8)
    assert not np.array_equal(other.indices(0), batches.indices(0))


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
