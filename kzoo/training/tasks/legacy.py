"""Run directories written before preprocessors were saved with the model.

Until then a `model.keras` held its tokenizer (an LSTM not even that) and the
settings that turn text into inputs stayed in the run's `config.yaml` (`data`
section). Such a model gets the preprocessor its recipe's task would build
today (`Task.make_preprocessor`), so `kzoo export`, `generate` and `evaluate`
treat it like a new one.
"""


def attach_preprocessor(model, run):
    """Returns `model`, given the preprocessor of its run's recipe if it has none.

    Args:
        model: A model loaded from `run`'s `model.keras`.
        run: Its `RunDirectory` (`config()`, `tokenizer(model)`, `path`).

    Raises:
        ValueError: The model has no preprocessor and the run's `config.yaml` does
            not describe one; the message says how to re-train or re-export.
    """
    if getattr(model, "preprocessor", "none") is not None or not run.has_config():
        return model  # It has one, takes none, or no recipe says which.
    from kzoo.training.recipe import validate
    from kzoo.training.tasks.registry import task_for

    try:
        task = task_for(validate(run.config()))
        model.preprocessor = task.make_preprocessor(run.tokenizer(model))
    except (ValueError, KeyError, FileNotFoundError) as error:
        raise ValueError(
            f"{run.path}: model.keras was written before preprocessors were saved with "
            f"the model, and its config.yaml does not say how to build one ({error}); "
            f"train the run again (`kzoo train {run.path}/config.yaml --run-dir NEW_DIR`) "
            "and export the new run"
        ) from error
    return model
