"""Generated labelled tasks on the built-in corpus, so BERT recipes run without downloads.

Generators are deterministic in `seed` and return examples exactly as the readers of
`kzoo.data.labelled_files` do, `"line"` included (where the example starts in the file
`write_builtin_task` writes for just those examples), so pipelines take either.

- classification (acceptability): "good" is a sentence sampled from the chain; "bad" a
  sampled sentence corrupted (adjacent words of different categories swapped, or a word
  replaced by one of another category) until it holds a category bigram the grammar
  never produces (e.g. noun, adjective). Word transitions respect the grammar, so every
  "bad" sentence has a zero-probability transition in the chain: telling them apart
  takes the grammar that masked-LM pretraining on corpus text teaches.
- pair_classification: "next" (text_pair follows text in a document) or "random".
- tagging: BIO chunks. A noun phrase (the adjectives and noun after a determiner) is an
  "NP" entity, each verb a "VP"; determiners, adverbs and punctuation are `O`.
- qa: a context of 3-6 facts "<subject> <verb> <object>." and the question "what does
  <subject> <verb>?", answered by the object. The (subject, verb) pairs of a context are
  distinct, its objects distinct nouns that are not subjects.

Labelled sentences come from chain paths seeded by `(seed, task, split)`, not by the
`seed` of `pretraining_documents`, so they do not copy the pretraining text; those of
classification and tagging have at most 32 symbols, to fit short sequences.
"""

import functools
import json
import os

import numpy as np

from kzoo import staged_files
from kzoo.data.builtin_corpus import PUNCTUATION, default_corpus

TASKS = ("classification", "pair_classification", "tagging", "qa")
_SPLITS = ("train", "validation")
_MAX_SENTENCE_SYMBOLS = 32
_FACTS_PER_CONTEXT = (3, 6)


def pretraining_documents(num_documents, seed=0):
    """Returns documents of the built-in corpus as lists of sentences.

    The documents of `default_corpus().documents(..., seed)` that have at least two
    sentences (for next-sentence prediction), split after each "."; every sentence
    string ends in ".".

    Example:
    >>> documents = pretraining_documents(2, seed=0)
    >>> documents[0][:2]
    ['zo kufe mosan to fuzi.', 'zo pisopuv derozo.']
    """
    _check_count(num_documents, "num_documents")
    documents = []
    for text in _document_texts(seed):
        if len(documents) == num_documents:
            return documents
        sentences = _split_sentences(text)
        if len(sentences) >= 2:
            documents.append(sentences)


def classification_examples(num_examples, seed=0):
    """Returns the acceptability task: grammatical ("good") or corrupted ("bad").

    Labels are balanced (one more "good" if `num_examples` is odd), in random order.

    Returns:
        A list of `{"text": str, "text_pair": None, "label": "good" | "bad", "line"}`.

    Example:
    >>> [e["label"] for e in classification_examples(4, seed=0)].count("bad")
    2
    """
    return _classification(num_examples, _task_rng("classification", seed, "train"))


def pair_classification_examples(num_examples, seed=0):
    """Returns the text-pair task: is `text_pair` the sentence after `text`?

    Returns:
        A list of `{"text": str, "text_pair": str, "label": "next" | "random", "line"}`,
        labels balanced as in `classification_examples`.

    Example:
    >>> sorted(e["label"] for e in pair_classification_examples(2, seed=0))
    ['next', 'random']
    """
    rng = _task_rng("pair_classification", seed, "train")
    return _pair_classification(num_examples, rng)


def tagging_examples(num_examples, seed=0):
    """Returns sentences with BIO chunk tags: noun phrases "NP", verbs "VP".

    Returns:
        A list of `{"tokens": [str], "tags": [str], "line": int}`; words and
        punctuation are separate tokens.

    Example:
    >>> example = tagging_examples(1, seed=0)[0]
    >>> len(example["tokens"]) == len(example["tags"])
    True
    """
    return _tagging(num_examples, _task_rng("tagging", seed, "train"))


def qa_examples(num_examples, seed=0):
    """Returns SQuAD-style questions about generated facts.

    Returns:
        A list of `{"id": str, "context": str, "question": str, "answers": [{"text":
        str, "answer_start": int}], "line": int}`, one answer each.

    Example:
    >>> example = qa_examples(1, seed=0)[0]
    >>> answer = example["answers"][0]
    >>> example["context"][answer["answer_start"]:].startswith(answer["text"])
    True
    """
    return _qa(num_examples, _task_rng("qa", seed, "train"))


def write_builtin_task(directory, task, num_train, num_validation, seed=0):
    """Writes a generated task as files in the formats `labelled_files` reads.

    Writes `directory/train.*` and `directory/validation.*` (at least one example
    each): classification and pair_classification as TSV with a header (`text`,
    `text_pair` for pairs, `label`), tagging as CoNLL (`token tag` lines), qa as SQuAD
    JSON Lines. The train file holds the task's generator's output for `seed`; the
    validation file a separate stream of the same seed. An existing file is an error.

    Returns:
        `{"train": path, "validation": path}`.

    Example:
    >>> import tempfile
    >>> paths = write_builtin_task(tempfile.mkdtemp(), "tagging", 3, 1, seed=0)
    >>> os.path.basename(paths["train"])
    'train.conll'
    """
    if task not in TASKS:
        raise ValueError(f"write_builtin_task: task must be one of {TASKS}, got {task!r}")
    counts = {"train": num_train, "validation": num_validation}
    generate, extension, writer = _TASK_FILES[task]
    paths = {split: os.path.join(directory, f"{split}{extension}") for split in _SPLITS}
    for split, path in paths.items():
        if not isinstance(counts[split], int) or counts[split] < 1:
            raise ValueError(
                f"write_builtin_task: num_{split} must be an integer >= 1, got {counts[split]!r}"
            )
        if os.path.exists(path):
            raise FileExistsError(f"write_builtin_task: {path!r} exists; remove it")
    os.makedirs(directory, exist_ok=True)
    for split, path in paths.items():
        examples = generate(counts[split], _task_rng(task, seed, split))
        staged_files.write_text_atomic(path, writer(examples))
    return paths


def ungrammatical_positions(symbols):
    """Returns the positions of `symbols` that cannot follow their predecessor.

    Checks category bigrams of `[".", *symbols]` against the built-in grammar, so
    position 0 is the first symbol after a sentence boundary.

    Example:
    >>> corpus = default_corpus()
    >>> ungrammatical_positions(corpus.parse("zo kufe mosan."))
    []
    >>> ungrammatical_positions(corpus.parse("kufe zo mosan."))
    [0, 1, 2]
    """
    corpus, allowed = _corpus(), _category_bigrams()
    categories = [corpus.category_of(s) for s in [".", *symbols]]
    pairs = zip(categories, categories[1:])
    return [i for i, pair in enumerate(pairs) if pair not in allowed]


def _classification(num_examples, rng):
    corpus = _corpus()
    sentences = _sentence_stream(rng)
    examples = []
    for label in _balanced_labels(num_examples, ("good", "bad"), rng):
        symbols = corpus.parse(next(sentences))
        if label == "bad":
            symbols = _corrupt(symbols, rng)
        text = corpus.render(symbols)
        examples.append({"text": text, "text_pair": None, "label": label})
    return _number_lines(examples, "classification")


def _pair_classification(num_examples, rng):
    labels = _balanced_labels(num_examples, ("next", "random"), rng)
    documents = pretraining_documents(num_examples + 1, _chain_seed(rng))
    examples = []
    for number, label in enumerate(labels):
        sentences = documents[number]
        position = int(rng.integers(len(sentences) - 1))
        text, following = sentences[position : position + 2]
        text_pair = following
        while label == "random" and text_pair == following:
            other = documents[(number + 1 + rng.integers(num_examples)) % len(documents)]
            text_pair = other[int(rng.integers(len(other)))]
        examples.append({"text": text, "text_pair": text_pair, "label": label})
    return _number_lines(examples, "pair_classification")


def _tagging(num_examples, rng):
    _check_count(num_examples, "num_examples")
    corpus, sentences = _corpus(), _sentence_stream(rng)
    examples = []
    for _ in range(num_examples):
        tokens = corpus.parse(next(sentences))
        tags = []
        for token in tokens:
            category = corpus.category_of(token)
            if category in ("adjective", "noun"):  # A noun phrase: [adjective]* noun.
                tags.append("I-NP" if tags and tags[-1].endswith("-NP") else "B-NP")
            else:
                tags.append("B-VP" if category == "verb" else "O")
        examples.append({"tokens": tokens, "tags": tags})
    return _number_lines(examples, "tagging")


def _qa(num_examples, rng):
    _check_count(num_examples, "num_examples")
    corpus = _corpus()
    nouns = [w for w in corpus.vocabulary if corpus.category_of(w) == "noun"]
    verbs = [w for w in corpus.vocabulary if corpus.category_of(w) == "verb"]
    low, high = _FACTS_PER_CONTEXT
    examples = []
    for number in range(num_examples):
        num_facts = int(rng.integers(low, high + 1))
        # Three subjects and three verbs give 9 distinct pairs, enough for every fact.
        chosen = [nouns[i] for i in rng.choice(len(nouns), 3 + num_facts, replace=False)]
        subjects, objects = chosen[:3], chosen[3:]
        fact_verbs = [verbs[i] for i in rng.choice(len(verbs), 3, replace=False)]
        pairs = [(s, v) for s in subjects for v in fact_verbs]
        facts, starts, offset = [], [], 0
        for index, obj in zip(rng.choice(len(pairs), num_facts, replace=False), objects):
            subject, verb = pairs[index]
            facts.append(f"{subject} {verb} {obj}.")
            starts.append(offset + len(subject) + len(verb) + 2)
            offset += len(facts[-1]) + 1
        asked = int(rng.integers(num_facts))
        subject, verb = facts[asked].split()[:2]
        examples.append(
            {
                "id": f"builtin-qa-{number}",
                "context": " ".join(facts),
                "question": f"what does {subject} {verb}?",
                "answers": [{"text": objects[asked], "answer_start": starts[asked]}],
            }
        )
    return _number_lines(examples, "qa")


def _corrupt(symbols, rng):
    """Swaps or replaces words of `symbols` until the grammar cannot produce them."""
    corpus = _corpus()
    category = corpus.category_of
    words = [i for i, s in enumerate(symbols) if s not in PUNCTUATION]
    swappable = [
        i for i in words if i + 1 in words and category(symbols[i]) != category(symbols[i + 1])
    ]  # Never empty: a sentence starts with a determiner and then a noun phrase.
    while True:
        corrupted = list(symbols)
        if rng.random() < 0.5:
            i = swappable[int(rng.integers(len(swappable)))]
            corrupted[i], corrupted[i + 1] = corrupted[i + 1], corrupted[i]
        else:
            i = words[int(rng.integers(len(words)))]
            others = [w for w in corpus.vocabulary if category(w) != category(symbols[i])]
            corrupted[i] = others[int(rng.integers(len(others)))]
        if ungrammatical_positions(corrupted):
            return corrupted


def _number_lines(examples, task):
    """Sets each example's `"line"` to where it starts in its `write_builtin_task` file."""
    line = 1 if task in ("tagging", "qa") else 2  # TSV files start with a header.
    for example in examples:
        example["line"] = line
        line += len(example["tokens"]) + 1 if task == "tagging" else 1
    return examples


def _write_tsv(examples):
    has_pair = examples[0]["text_pair"] is not None
    columns = ["text", "text_pair", "label"] if has_pair else ["text", "label"]
    rows = [columns] + [[example[c] for c in columns] for example in examples]
    return "".join("\t".join(row) + "\n" for row in rows)


def _write_conll(examples):
    sentences = (
        "".join(f"{token} {tag}\n" for token, tag in zip(e["tokens"], e["tags"])) for e in examples
    )
    return "\n".join(sentences) + "\n"


def _write_squad(examples):
    lines = []
    for e in examples:
        answers = {
            "text": [a["text"] for a in e["answers"]],
            "answer_start": [a["answer_start"] for a in e["answers"]],
        }
        row = {"id": e["id"], "context": e["context"], "question": e["question"]}
        lines.append(json.dumps({**row, "answers": answers}) + "\n")
    return "".join(lines)


_TASK_FILES = {  # task: (generator, file extension, file writer)
    "classification": (_classification, ".tsv", _write_tsv),
    "pair_classification": (_pair_classification, ".tsv", _write_tsv),
    "tagging": (_tagging, ".conll", _write_conll),
    "qa": (_qa, ".jsonl", _write_squad),
}


@functools.cache
def _corpus():
    return default_corpus()


@functools.cache
def _category_bigrams():
    """The (category, next category) pairs with a nonzero transition in the chain."""
    corpus = _corpus()
    categories = [corpus.category_of(s) for s in corpus.symbols]
    rows, columns = np.nonzero(corpus.transition_matrix)
    return frozenset((categories[i], categories[j]) for i, j in zip(rows, columns))


def _task_rng(task, seed, split):
    return np.random.default_rng([seed, TASKS.index(task), _SPLITS.index(split)])


def _chain_seed(rng):
    return int(rng.integers(2**31))


def _balanced_labels(num_examples, labels, rng):
    _check_count(num_examples, "num_examples")
    first, second = labels
    balanced = [first] * (num_examples - num_examples // 2) + [second] * (num_examples // 2)
    return [balanced[i] for i in rng.permutation(num_examples)]


def _document_texts(seed):
    """Yields the documents of one chain path, however many are needed."""
    done, batch = 0, 64
    while True:  # `documents(n, seed)` is a prefix of `documents(m, seed)`, m > n.
        yield from _corpus().documents(done + batch, seed=seed)[done:]
        done, batch = done + batch, batch * 2


def _sentence_stream(rng):
    for text in _document_texts(_chain_seed(rng)):
        for sentence in _split_sentences(text):
            if len(_corpus().parse(sentence)) <= _MAX_SENTENCE_SYMBOLS:
                yield sentence


def _split_sentences(text):
    parts = text.split(". ")
    return [part + "." for part in parts[:-1]] + parts[-1:]


def _check_count(count, name):
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {count!r}")
