"""Recipe overrides that make a run train in seconds on 2 cores."""

# Overrides of gpt_tiny (the GPT ones; the data and train ones fit every recipe).
TINY_OVERRIDES = [
    "model.num_layers=1",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "model.max_sequence_length=32",
    "tokenizer.vocab_size=320",
    "data.sequence_length=16",
    "data.batch_size=8",
    "data.builtin_train_documents=60",
    "data.builtin_validation_documents=10",
    "train.steps=6",
    "train.steps_per_epoch=3",
    "train.warmup_steps=2",
    "train.sample_max_new_tokens=8",
    "train.log_every=2",
    "export.max_new_tokens=8",
    "export.max_prompt_tokens=16",
]

# Overrides of the BERT recipes (which set num_heads 2): a one-layer encoder on
# 32-token sequences.
TINY_BERT_OVERRIDES = [
    "model.num_layers=1",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "model.max_sequence_length=32",
    "tokenizer.vocab_size=300",
    "data.sequence_length=32",
    "data.batch_size=8",
]

# For tests of features other than monitoring: no op graph, projector, attention
# maps, weight histograms, gradient norms or text samples (the recipe tests keep
# every monitor on, as users run them). Append after the test's own overrides.
QUIET_OVERRIDES = [
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
    "monitor.gradient_norms=false",
    "train.sample_prompts=[]",
]


def load_tiny_recipe(*overrides, recipe="gpt_tiny"):
    """`recipes/RECIPE.yaml` with `TINY_OVERRIDES`, then `overrides`, validated."""
    from kzoo.testing.checkout import recipe_path
    from kzoo.training.recipe import load_recipe

    return load_recipe(recipe_path(recipe), TINY_OVERRIDES + list(overrides))
