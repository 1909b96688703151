"""The recipe keys of T5 (`model.family: t5`): span-corruption pretraining
(`kzoo.training.tasks.t5_pretrain`) and text-to-text fine-tuning (`seq2seq`)."""

from kzoo.data.builtin_translation import check_mixture
from kzoo.training.config import ConfigError, Field, fraction, in_range, positive
from kzoo.training.tasks.schema import FamilySchema, size_field, task_field, transformer_fields
from kzoo.training.tasks.seq2seq_schema import PAIR_DATA, check_encoder_decoder

TASKS = {
    "pretrain": "kzoo.training.tasks.t5_pretrain:T5PretrainTask",
    "finetune": "kzoo.training.tasks.seq2seq:Seq2SeqTask",
}


def check_t5(config):
    """The encoder-decoder checks, and a valid `data.mixture`."""
    check_encoder_decoder(config)
    try:
        check_mixture(config["data"]["mixture"])
    except ValueError as error:
        raise ConfigError(str(error)) from None


T5 = FamilySchema(
    model={
        "task": task_field(TASKS, "pretrain (span corruption) or finetune (text-to-text)"),
        "size": size_field(("tiny", "small", "base", "large"), "kzoo.models.T5_SIZES"),
        **transformer_fields(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
        "key_value_dim": Field((int,), None, positive, nullable=True),
        "dropout": Field((float,), 0.1, fraction),
        "activation": Field(
            (str,), "gelu_approximate", choices=("relu", "gelu", "gelu_approximate")
        ),
        "use_gated_activation": Field((bool,), True, doc="T5 v1.1 (true) or v1.0"),
        "tie_embedding_weights": Field((bool,), False, doc="T5 v1.0 (true) or v1.1"),
        "max_sequence_length": Field(
            (int,), 512, positive, doc="longest source or generated target"
        ),
        "label_smoothing": Field((float,), 0.0, in_range(0.0, 0.99)),
    },
    data={
        **PAIR_DATA,
        "mixture": Field(
            (dict,),
            None,
            nullable=True,
            doc="finetune: built-in tasks and their sampling rates, e.g. "
            "{translate: 2, plural: 1}; null: data.builtin_task alone",
        ),
        "noise_density": Field(
            (float,), 0.15, in_range(0.01, 0.9), doc="pretrain: share of tokens corrupted"
        ),
        "mean_noise_span_length": Field((float,), 3.0, in_range(1.0, 100.0)),
        "num_sentinels": Field(
            (int,), 32, positive, doc="sentinel tokens reserved in the vocabulary"
        ),
        "builtin_train_documents": Field((int,), 4000, positive),
        "builtin_validation_documents": Field((int,), 200, positive),
    },
    tasks=TASKS,
    fine_tuning_tasks=("finetune",),
    encoder_decoder=True,
    check=check_t5,
)
