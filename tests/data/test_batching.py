import numpy as np

from seqtune.data.batching import evaluation_batches, training_batches


def test_every_example_once_and_grouped_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000).tolist()
    batches = training_batches(lengths, 32, None, np.random.default_rng(1))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    random_padded = sum(32 * max(lengths[i] for i in range(s, min(s + 32, 1000))) for s in range(0, 1000, 32))
    assert padded < 0.8 * random_padded  # bucketing removes most padding
    assert training_batches(lengths, 32, None, np.random.default_rng(1)) == batches  # seeded


def test_token_budget():
    lengths = [10] * 50 + [100] * 10
    for b in training_batches(lengths, None, 400, np.random.default_rng(0)):
        assert len(b) * max(lengths[i] for i in b) <= 400 or len(b) == 1
    eval_batches = evaluation_batches(lengths, 400)
    assert sorted(i for b in eval_batches for i in b) == list(range(60))


def test_one_bucket_batch_gives_plain_random_batches():
    import numpy as np

    from seqtune.data.batching import training_batches

    lengths = list(np.random.default_rng(0).integers(1, 100, 200))
    batches = training_batches(lengths, 16, None, np.random.default_rng(3), bucket_batches=1)
    order = np.random.default_rng(3).permutation(200).tolist()
    slices = [sorted(order[i:i + 16]) for i in range(0, 200, 16)]
    assert sorted(sorted(b) for b in batches) == sorted(slices)


def test_length_buckets_must_be_positive():
    import numpy as np
    import pytest

    from seqtune.data.batching import training_batches
    from seqtune.errors import SeqtuneError

    with pytest.raises(SeqtuneError, match="length_buckets"):
        training_batches([3, 4], 2, None, np.random.default_rng(0), bucket_batches=0)
