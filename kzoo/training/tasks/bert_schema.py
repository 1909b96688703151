"""The recipe keys of BERT (`model.family: bert`), pretrained by
`kzoo.training.tasks.bert_pretrain` and fine-tuned by `bert_finetune`."""

from kzoo.training.config import ConfigError, Field, fraction, in_range, positive
from kzoo.training.tasks.schema import (
    FamilySchema,
    size_field,
    table_fields,
    task_field,
    transformer_fields,
)

TASKS = {
    "pretrain": "kzoo.training.tasks.bert_pretrain:BertPretrainTask",
    "classify": "kzoo.training.tasks.bert_finetune:BertClassifyTask",
    "tag": "kzoo.training.tasks.bert_finetune:BertTagTask",
    "qa": "kzoo.training.tasks.bert_finetune:BertQATask",
}


def check_bert(config):
    """The masking rates add up, and a QA window leaves room for context."""
    data = config["data"]
    if data["mlm_mask_token_rate"] + data["mlm_random_token_rate"] > 1:
        raise ConfigError(
            "data.mlm_mask_token_rate + data.mlm_random_token_rate: must "
            "be <= 1 (the rest of the selected tokens stay unchanged)"
        )
    if config["model"]["task"] == "qa" and (
        data["max_query_tokens"] + 3 + data["doc_stride"] > data["sequence_length"]
    ):
        raise ConfigError(
            f"data.max_query_tokens + data.doc_stride: {data['max_query_tokens']} + "
            f"{data['doc_stride']} leave no room for a context window in "
            f"data.sequence_length {data['sequence_length']} (3 special tokens)"
        )


BERT = FamilySchema(
    model={
        "task": task_field(TASKS, "pretrain (MLM + NSP), classify, tag (BIO) or qa (spans)"),
        "size": size_field(
            ("tiny", "mini", "small", "medium", "base", "large"), "kzoo.models.bert.BERT_SIZES"
        ),
        **transformer_fields(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=256),
        "dropout": Field((float,), 0.1, fraction),
        "max_sequence_length": Field((int,), 128, positive, doc="positions"),
        "num_segments": Field((int,), 2, positive),
        "classifier_dropout": Field((float,), 0.1, fraction, doc="dropout before a task head"),
    },
    data={
        **table_fields("classification files"),
        "text_column": Field((str, int), "text", doc="column name or 0-based index"),
        "text_pair_column": Field(
            (str, int), None, nullable=True, doc="second text of a pair task"
        ),
        "label_column": Field((str, int), "label"),
        "builtin_task": Field(
            (str,),
            "acceptability",
            choices=("acceptability", "next_sentence"),
            doc="built-in classification task",
        ),
        "builtin_train_examples": Field((int,), 2000, positive),
        "builtin_validation_examples": Field((int,), 400, positive),
        "mlm_selection_rate": Field((float,), 0.15, fraction),
        "mlm_mask_token_rate": Field((float,), 0.8, in_range(0.0, 1.0)),
        "mlm_random_token_rate": Field((float,), 0.1, in_range(0.0, 1.0)),
        "nsp_random_probability": Field((float,), 0.5, in_range(0.0, 1.0)),
        "short_sequence_probability": Field((float,), 0.1, in_range(0.0, 1.0)),
        "max_query_tokens": Field((int,), 24, positive, doc="qa: longer questions are cut"),
        "doc_stride": Field((int,), 32, positive, doc="qa: tokens between context windows"),
        "max_answer_tokens": Field((int,), 16, positive, doc="qa: longest predicted answer"),
    },
    tasks=TASKS,
    tokenizer_kinds=("wordpiece",),
    fine_tuning_tasks=("classify", "tag", "qa"),
    check=check_bert,
)
