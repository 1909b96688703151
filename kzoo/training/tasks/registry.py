"""Which `Task` (`kzoo.training.tasks.base`) trains a recipe: by its family and task.

Apart from `task.py`, so the task modules (which subclass `Task`) and this
lookup (which imports them) form no import cycle.
"""


def task_for(config):
    """The `Task` of a validated recipe."""
    # Imports only the family's own task module (BERT's pull in keras_hub).
    family, task = config["model"]["family"], config["model"].get("task")
    if family in ("gpt", "lstm"):
        from kzoo.training.tasks.causal_lm import CausalLMTask

        return CausalLMTask(config)
    if family == "bert":
        from kzoo.training.tasks import bert_finetune, bert_pretrain

        tasks = {
            "pretrain": bert_pretrain.BertPretrainTask,
            "classify": bert_finetune.BertClassifyTask,
            "tag": bert_finetune.BertTagTask,
            "qa": bert_finetune.BertQATask,
        }
        return tasks[task](config)
    if family == "seq2seq" or (family == "t5" and task == "finetune"):
        from kzoo.training.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask(config)
    if family == "t5":
        from kzoo.training.tasks.t5_pretrain import T5PretrainTask

        return T5PretrainTask(config)
    raise ValueError(f"model.family: no task for {family!r}")
