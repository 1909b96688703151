"""Magnitude pruning (`train.prune`): the schedule, the masks, masks kept through
updates and checkpoints, refusals. (A pruned run resuming step-exactly, its
TensorBoard scalars and its saved zeros: tests/training/test_distillation.py.)"""

import keras
import numpy as np
import pytest

from kzoo.testing.tiny_recipes import load_tiny_recipe
from kzoo.training import checkpoints, pruning
from kzoo.training.config import ConfigError

SETTINGS = {"target_sparsity": 0.75, "begin_step": 2, "end_step": 6, "frequency": 2}


def test_the_schedule_is_tfmot_s_polynomial_decay():
    # TFMOT PolynomialDecay(initial 0, final 0.8, begin 10, end 30, power 3).
    expected = [0.0, 0.0, 0.8 * (1 - 0.5**3), 0.8, 0.8]
    assert [pruning.scheduled_sparsity(t, 0.8, 10, 30) for t in (0, 10, 20, 30, 99)] == (
        pytest.approx(expected)
    )


def test_a_mask_drops_the_smallest_magnitudes():
    weights = np.random.default_rng(0).normal(size=(8, 16))
    mask = pruning.magnitude_mask(weights, 0.3)
    assert mask.sum() == 128 - int(0.3 * 128)
    assert np.abs(weights[mask == 0]).max() <= np.abs(weights[mask == 1]).min()


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, name="a"), keras.layers.Dense(3, name="b")],
        name="mlp",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def test_masks_follow_the_schedule_and_hold_after_every_update(tmp_path):
    model = _model()
    pruner = pruning.Pruner(model, SETTINGS, total_steps=8)
    assert [k.path for k in pruner.kernels] == ["mlp/a/kernel", "mlp/b/kernel"]
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            zeros = [float((k.numpy() == 0).mean()) for k in pruner.kernels]
            seen.append(zeros[0])
            # Pruned weights stay zero after the optimizer moved them.
            for kernel, mask in zip(pruner.kernels, pruner.masks):
                assert not np.any(kernel.numpy()[mask.numpy() == 0])

    x, y = np.ones((8, 6), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, batch_size=1, epochs=1, callbacks=[pruner, Watch()], verbose=0)
    # Updated at steps 2, 4, 6 to 0.75 * (1 - (1 - p)^3), p = 0, 1/2, 1: of 48
    # weights, 0, 31 and 36.
    assert seen == pytest.approx([0, 0, 0, 31 / 48, 31 / 48, 0.75, 0.75, 0.75])
    assert pruner.overall_sparsity() == pytest.approx(0.75, abs=0.01)


def test_masks_travel_in_checkpoints(tmp_path):
    model = _model()
    pruner = pruning.Pruner(model, SETTINGS, total_steps=8)
    pruner.update_masks(step=6)
    path = checkpoints.write(str(tmp_path), model, {"step": 6}, extra=pruner.checkpoint_variables)
    masks = [m.numpy() for m in pruner.masks]
    fresh = _model()
    again = pruning.Pruner(fresh, SETTINGS, total_steps=8)
    checkpoints.restore(path, fresh, extra=again.checkpoint_variables)
    for a, b in zip(masks, again.masks):
        np.testing.assert_array_equal(a, b.numpy())
    with pytest.raises(checkpoints.CheckpointError, match="holds 16 variables, the model has 14"):
        checkpoints.restore(path, _model())  # Without its masks: not this model's.


def test_refusals_name_the_key():
    with pytest.raises(
        ConfigError, match="train.prune.*: LoRA freezes the kernels pruning would zero"
    ):
        load_tiny_recipe("train.init_from=base", "train.lora.rank=2", "train.prune={}")
    with pytest.raises(ConfigError, match="train.prune.*: 3 is not after train.prune.begin_step 5"):
        load_tiny_recipe("train.prune={begin_step: 5, end_step: 3}")
    with pytest.raises(ConfigError, match=r"train.prune.target_sparsity.*must be in \(0, 1\)"):
        load_tiny_recipe("train.prune.target_sparsity=1.0")
    with pytest.raises(ValueError, match="has no dense kernels to prune"):
        pruning.Pruner(keras.Sequential([keras.Input((2,))]), SETTINGS, total_steps=8)
