"""What TensorBoard shows beyond losses (the recipe's `monitor` section).

Stub: issue 7 fills in the op graph, the embedding projector, attention maps,
gradient norms, weight histograms and profiling.
"""


def tensorboard_options(config):
    """Extra keyword arguments of the TensorBoard callback."""
    return {}


def callbacks(config, run_dir, model, plan, tokenizer):
    """Monitoring callbacks, run before TensorBoard writes the epoch logs."""
    return []
