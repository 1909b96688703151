"""Checking that a fine-tuning run starts from its pretrained run (`train.init_from`)."""


def assert_fine_tuning_starts_from(run_dir, pretrained_dir):
    """The backbone that `run_dir`'s task builds holds exactly the weights of the
    backbone of `pretrained_dir`'s model, its `train.init_from`.

    Returns:
        The validated config of `run_dir`, for further checks.
    """
    import numpy as np

    from kzoo.tokenizers import load_tokenizer
    from kzoo.training.recipe import validate
    from kzoo.training.run_directory import RunDirectory
    from kzoo.training.tasks.registry import task_for

    config = validate(RunDirectory(run_dir).config())
    assert config["train"]["init_from"] == str(pretrained_dir)
    task = task_for(config)
    task.resolve_data()
    backbone = task.build_backbone(load_tokenizer(str(run_dir)))
    pretrained = RunDirectory(pretrained_dir).load_model().backbone
    for mine, theirs in zip(backbone.get_weights(), pretrained.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    return config
