"""What a recipe trains: one `Task` per kind of run (`base`), found by the
recipe's family and task in a lazy registry (`registry.task_for`), and the shared
sources of text (`corpus_source`) and pairs (`parallel_source`).

Modules: `causal_lm` (GPT, LSTM), `bert_pretrain`, `bert_finetune` (classify,
tag, QA), `seq2seq` (translation, T5 text-to-text), `t5_pretrain`; beside them each
family's recipe keys and checks (`causal_lm_schema`, `bert_schema`,
`seq2seq_schema`, `t5_schema`: a `schema.FamilySchema` each, named in
`registry.FAMILIES`).
"""
