"""Evaluation metrics: of generated text (`text_metrics`: BLEU, ROUGE, exact
match) and of the fine-tuning tasks (`task_metrics`: entity F1, macro F1, SQuAD).
Pure Python over whole evaluation sets, on the reference libraries."""
