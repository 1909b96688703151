"""What a run wrote for TensorBoard: its tags, and the steps of every summary."""

import glob
import os


def tensorboard_tags(run_dir):
    """Every scalar and tensor tag written under `RUN/tensorboard/*/`."""
    from tensorboard.backend.event_processing import event_accumulator

    from kzoo.training.run_directory import RunDirectory

    tags = set()
    board = RunDirectory(run_dir).tensorboard_dir()
    for events in glob.glob(os.path.join(board, "*", "events.*")):
        accumulator = event_accumulator.EventAccumulator(events)
        accumulator.Reload()
        tags |= set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["scalars"])
    return tags


def tensorboard_events(log_dir):
    """`{(event directory relative to log_dir, tag): sorted steps}` of every summary
    in the event files under `log_dir`, a graph as tag `(graph)`; a step written
    twice (an interrupted run's step-0 text, written again on resume) counts once."""
    import tensorflow as tf

    events = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.*"), recursive=True):
        directory = os.path.relpath(os.path.dirname(path), log_dir)
        for event in tf.compat.v1.train.summary_iterator(path):
            tags = [value.tag for value in event.summary.value]
            for tag in tags + (["(graph)"] if event.graph_def else []):
                events.setdefault((directory, tag), set()).add(event.step)
    return {key: sorted(steps) for key, steps in events.items()}
