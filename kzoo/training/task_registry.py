"""Which `Task` (`kzoo.training.task`) trains a recipe: by its family and task.

Apart from `task.py`, so the task modules (which subclass `Task`) and this
lookup (which imports them) form no import cycle.
"""


def task_for(config):
    """The `Task` of a validated recipe."""
    # Imports only the family's own task module (BERT's pull in keras_hub).
    family, task = config["model"]["family"], config["model"].get("task")
    if family in ("gpt", "lstm"):
        from kzoo.training.causal_lm_task import CausalLMTask

        return CausalLMTask(config)
    if family == "bert":
        from kzoo.training import bert_finetuning_tasks, bert_tasks

        tasks = {
            "pretrain": bert_tasks.BertPretrainTask,
            "classify": bert_finetuning_tasks.BertClassifyTask,
            "tag": bert_finetuning_tasks.BertTagTask,
            "qa": bert_finetuning_tasks.BertQATask,
        }
        return tasks[task](config)
    if family == "seq2seq" or (family == "t5" and task == "finetune"):
        from kzoo.training.seq2seq_tasks import Seq2SeqTask

        return Seq2SeqTask(config)
    if family == "t5":
        from kzoo.training.t5_pretrain_task import T5PretrainTask

        return T5PretrainTask(config)
    raise ValueError(f"model.family: no task for {family!r}")
