"""The optimizer of `kzoo train`: AdamW with warmup + cosine decay."""

import keras

# Not decayed: biases, normalization scales/offsets (GPT-2 / nanoGPT practice).
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "scale"]


def learning_rate_schedule(train_config, total_steps):
    """Linear warmup to `learning_rate`, then cosine decay to `min_learning_rate`
    at `total_steps` (or constant, for `decay: constant`)."""
    peak = train_config["learning_rate"]
    warmup = min(train_config["warmup_steps"], max(total_steps - 1, 0))
    floor = peak if train_config["decay"] == "constant" else train_config["min_learning_rate"]
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(total_steps - warmup, 1),
        alpha=min(floor / peak, 1.0),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(train_config, total_steps):
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(train_config, total_steps),
        weight_decay=train_config["weight_decay"],
        beta_1=train_config["beta_1"],
        beta_2=train_config["beta_2"],
        clipnorm=train_config["clipnorm"],
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer
