"""What a recipe trains: one `Task` per kind of run (`base`), found by the
recipe's family and task in a lazy registry (`registry.task_for`), and the shared
sources of text: corpora, pairs and text-to-text mixtures (`text_sources`).

Modules: `causal_lm` (GPT, LSTM), `bert_pretrain`, `bert_finetune` (classify,
tag, QA), `seq2seq` (translation, T5 text-to-text), `t5_pretrain`; beside them each
family's recipe keys and checks (`causal_lm_schema`, `bert_schema`,
`seq2seq_schema` (seq2seq and T5): `schema.FamilySchema`s, named in
`registry.FAMILIES`).
"""
