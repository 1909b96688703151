"""Shared test code: the checks every layer and model must pass, tiny runs and
recipes, serving fuzz helpers, and small tools the tests and benchmarks share.

Tests and benchmarks import helpers from here, never from `tests/` (fixtures stay in
the `conftest.py` files). One module per concept:

- `outputs`: tensors as NumPy/Python values, `assert_all_close`.
- `layer_checks`, `model_checks`: `run_layer_test`, `run_model_test` (keras only, so
  they run on JAX too).
- `preprocessor_checks`: `run_preprocessor_test` (a preprocessor inside its task
  model: config and `.keras` round trips give the same inputs).
- `tiny_recipes`: `TINY_OVERRIDES`, recipes that train in seconds.
- `tiny_runs`: run directories and exports of every family, built without training.
- `serving_fuzz`: hostile requests to exported signatures and the policy's verdict.
- `resume_checks`: interrupting training at a step; comparing two runs' weights.
- `init_from_checks`: a fine-tuning run starts from its pretrained run's backbone.
- `tensorboard_logs`, `tokenizer_texts`, `checkout`, `processes`, `ports`.

This package re-exports the helpers of the modules that do not load TensorFlow on
import; import `kzoo.testing.tiny_runs`, `kzoo.testing.serving_fuzz` and
`kzoo.testing.preprocessor_checks` by name.
"""

from kzoo.testing.checkout import ROOT, recipe_path
from kzoo.testing.layer_checks import run_layer_test
from kzoo.testing.model_checks import assert_cached_decoding_matches_full_pass, run_model_test
from kzoo.testing.outputs import assert_all_close, strings, to_numpy
from kzoo.testing.ports import free_port, listening_addresses
from kzoo.testing.processes import child_pids, kzoo_command
from kzoo.testing.resume_checks import (
    assert_interrupted_run_resumes_to,
    assert_same_weights,
    interrupt_at,
)
from kzoo.testing.tensorboard_logs import tensorboard_events, tensorboard_tags
from kzoo.testing.tiny_models import TINY_TRANSFORMER
from kzoo.testing.tiny_recipes import TINY_OVERRIDES, load_tiny_recipe
