"""What TensorBoard shows beyond losses (the recipe's `monitor` section).

Every key is on by default; each writes under `RUN/tensorboard/`:

    monitor.graph           train/      the forward pass's op graph (Graphs;
                                        TensorFlow backend only)
    monitor.projector       projector/  the token embedding after every epoch,
                                        with each row's token (Projector)
    monitor.attention_maps  attention/  heatmaps of every attention layer on a
                                        fixed probe input, every epoch (Images)
    monitor.histograms      train/      weight histograms every epoch
                                        (Histograms, Distributions)
    monitor.gradient_norms  train/      `batch_gradient_norm`: the global norm of
                                        the gradients before clipping, every
                                        `train.log_every` steps (Scalars)
    monitor.profile_steps   train/plugins/profile/
                                        a profiler trace of steps [first, last]
                                        (Profile; off by default)

The callbacks only observe: an error in one of them warns once and training
goes on (`kzoo.training.callbacks.warns_instead_of_failing`).
"""

from kzoo.training.callbacks import GradientNorm
from kzoo.training.monitoring.attention_maps import AttentionMaps
from kzoo.training.monitoring.embedding_projector import EmbeddingProjector
from kzoo.training.monitoring.graph_summary import GraphSummary
from kzoo.training.monitoring.profiling import profile_batch
from kzoo.training.run_directory import RunDirectory


def tensorboard_options(config):
    """Extra keyword arguments of the TensorBoard callback."""
    return {
        "histogram_freq": 1 if config["monitor"]["histograms"] else 0,
        "profile_batch": profile_batch(config),
    }


def callbacks(config, run_dir, model, plan, tokenizer):
    """Monitoring callbacks, run before TensorBoard writes the epoch logs."""
    monitor = config["monitor"]
    run = RunDirectory(run_dir)
    chosen = []
    if monitor["graph"]:
        spec = getattr(plan.train, "element_spec", None)
        chosen.append(
            GraphSummary(run.tensorboard_dir("train"), spec[0] if isinstance(spec, tuple) else None)
        )
    if monitor["gradient_norms"]:
        chosen.append(GradientNorm(config["train"]["log_every"]))
    if monitor["attention_maps"]:
        probe_data = plan.validation if plan.validation is not None else plan.train
        chosen.append(
            AttentionMaps(run.tensorboard_dir("attention"), probe_data, tokenizer.get_vocabulary())
        )
    if monitor["projector"]:
        chosen.append(
            EmbeddingProjector(run.tensorboard_dir("projector"), tokenizer.get_vocabulary())
        )
    return chosen
