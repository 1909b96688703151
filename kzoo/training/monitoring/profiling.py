"""A profiler trace of a few training steps (`monitor.profile_steps`).

Keras' TensorBoard callback runs the profiler (`profile_batch`) from the start
of step `first` to the end of step `last`, steps counted from 1 over the whole
run (a resumed run goes on counting), and writes the trace to
`RUN/tensorboard/train/plugins/profile/<time>/<host>.xplane.pb`, which
TensorBoard's Profile dashboard (`tensorboard-plugin-profile`) shows. The
TensorFlow backend only: Keras skips profiling, with a warning, under JAX on
Python < 3.12.

Kept free of TensorFlow imports: the recipe schema uses it.
"""

from kzoo.training.config import ConfigError

PROBLEM = "must be [first, last] with 1 <= first <= last (step numbers, from 1)"


def profile_steps_problem(value):
    """The `Field` check of `monitor.profile_steps`: an error phrase or None.

    Example:
    >>> profile_steps_problem([3, 5]) is None
    True
    >>> profile_steps_problem([5, 3])
    'must be [first, last] with 1 <= first <= last (step numbers, from 1)'
    """
    steps_ok = (
        len(value) == 2
        and all(isinstance(step, int) and not isinstance(step, bool) for step in value)
        and 1 <= value[0] <= value[1]
    )
    return None if steps_ok else PROBLEM


def check_profile_steps(config):
    """Raises ConfigError when `monitor.profile_steps` ends after `train.steps`."""
    steps, total = config["monitor"]["profile_steps"], config["train"]["steps"]
    if steps is not None and total is not None and steps[1] > total:
        raise ConfigError(
            f"monitor.profile_steps: {steps!r} ends after train.steps {total}; profile "
            f"steps between 1 and {total}"
        )


def profile_batch(config):
    """The TensorBoard callback's `profile_batch`: `(first, last)`, or 0 (off)."""
    check_profile_steps(config)
    steps = config["monitor"]["profile_steps"]
    return tuple(steps) if steps is not None else 0
