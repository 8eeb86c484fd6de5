"""Issue 22 item 21: any integer seeds a training run."""

from rhlens.training import TrainConfig, train
from rhlens.training.data import batch_indices


def test_the_largest_int64_seed_trains_and_reproduces(build_model, examples):
    """Issue 22 item 21: seed 2**63 - 1 (the largest a TOML file can hold) failed at the first step
    (the data order's generator seed overflowed); it trains, the same twice, and orders the data
    unlike seed 0."""
    seed = 2**63 - 1
    config = TrainConfig(steps=3, batch_size=4, lr=3e-3, warmup_steps=1, seed=seed, progress=False)
    first = train(build_model(), examples, config)
    again = train(build_model(), examples, config)
    assert first.loss_curve == again.loss_curve and len(first.loss_curve) == 3
    orders = {s: batch_indices(0, batch_size=8, n_examples=len(examples), seed=s, shuffle=True) for s in (0, seed)}
    assert orders[seed] != orders[0] and sorted(set(orders[seed])) == sorted(orders[seed])
