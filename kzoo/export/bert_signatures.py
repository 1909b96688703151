"""The serving signatures of BERT runs: raw strings in, labels, tags, answers out.

Tokenization, packing and post-processing run in the graph (`kzoo.data.bert_inputs`,
`kzoo.data.qa_windows`: the code the training pipelines use), so a client sends
text. Inputs and outputs are dense and outputs batch-first (REST encodes no
ragged tensors); variable-length outputs are padded with "" (strings) or 0.
Inputs are declared with any rank and checked in the graph (`input_policy`): a
scalar is one text (outputs with 1 row); rank 2 or more is InvalidArgument
naming the input.

    classify   texts string [B] (, text_pairs string [B] for a pair classifier)
      -> label string [B], label_id int32 [B], probabilities float32 [B, C]
    tag        texts string [B]
      -> tokens string [B, W] (words: whitespace split, punctuation apart),
         tags string [B, W], num_tokens int32 [B]; words past the length limit
         are tagged "O"
    answer     questions string [B], contexts string [B]
      -> answer string [B] (a substring of the context), score float32 [B],
         start_byte / end_byte int32 [B] (UTF-8 byte span in the context)
    fill_mask  texts string [B] with the literal "[MASK]"
      -> tokens string [B, M, K] (best K tokens per [MASK], M the most [MASK]s of
         the batch, at least 1), scores float32 [B, M, K] (probabilities),
         mask_count int32 [B]
    embed      texts string [B] -> embedding float32 [B, H] (the pooled output)

Which exist depends on the model: a pretraining run serves `fill_mask` (its
default) and `embed`; a classifier `classify`, a tagger `tag`, a QA model `answer`
(each its default), and `embed`. The text is turned into inputs by the model's
own preprocessor (`model.preprocessor`, saved in `model.keras`; never the recipe):
texts are cut to its `sequence_length` (pairs round-robin, questions to
`max_query_tokens`, long contexts split into windows of stride `doc_stride`), and
a classifier takes `text_pairs` when its preprocessor says `pairs`; `tag` still
returns every word, `fill_mask` only the [MASK]s that fit.

Unusual inputs follow `input_policy`: invalid UTF-8 becomes U+FFFD (so `tokens`,
`answer` and the byte offsets refer to the text after that replacement); an empty
or whitespace-only text (or either side of a pair, a question or a context) packs
an empty segment and is answered like any other (`tag`: 0 words; `answer`: "" from
an empty context); 0 rows give 0 rows; `text_pairs` not one per text and
`contexts` not one per question are InvalidArgument naming the input.
"""

import tensorflow as tf

from kzoo.data import qa_answers
from kzoo.export.input_policy import any_rank, as_rows, one_per_row, valid_utf8
from kzoo.export.signatures import SERVING_DEFAULT, ServingSignatures
from kzoo.preprocessing.bert_masked_lm_preprocessor import MASK_TOKEN

_TEXTS = any_rank("texts", tf.string)


# The default signature of each BERT task model; every one also serves `embed`.
MAIN_SIGNATURES = {
    "BertPretrainer": "fill_mask",
    "BertClassifier": "classify",
    "BertTokenClassifier": "tag",
    "BertQuestionAnswerer": "answer",
}


def _strings(name):
    return any_rank(name, tf.string)


def model_preprocessor(model):
    """`model.preprocessor`, which holds every setting the signatures read.

    Raises:
        ValueError: The model has none (built in code without one, or a
            `model.keras` the run loader could not give one).
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            f"{type(model).__name__} has no preprocessor: build it with "
            "preprocessor=kzoo.preprocessing.<Task>Preprocessor(...), or load it with "
            "RunDirectory(run_dir).load_model(), which gives old runs theirs"
        )
    return preprocessor


class BertSignatures(ServingSignatures):
    """The `ServingSignatures` of a BERT task model: its main endpoint (TF Serving's
    default: `MAIN_SIGNATURES`) and `embed`.

    The sample requests are built from the vocabulary's words (so they exist for
    any corpus); their expected outputs are the endpoint functions run eagerly on
    the Keras model (the default `reference_outputs`): `kzoo check-serving` then
    shows that the SavedModel, loaded without Keras or kzoo, answers the same
    (strings and ids exactly, floats to 1e-4).

    Args:
        model: `BertPretrainer`, `BertClassifier`, `BertTokenClassifier` or
            `BertQuestionAnswerer`, with its `preprocessor` (a
            `kzoo.preprocessing.BertPreprocessor` of the task: the tokenizer,
            the lengths, QA windows and whether a classifier takes pairs).
        top_k: Candidates per [MASK] for `fill_mask`.
        xla: Compile the encoder call with XLA.
    """

    def __init__(self, model, top_k=5, xla=False):
        self.preprocessor = model_preprocessor(model)
        self.model = model
        self.tokenizer = self.preprocessor.tokenizer
        self.top_k = int(top_k)
        self.pairs = bool(getattr(self.preprocessor, "pairs", False))
        self._call = tf.function(
            lambda inputs: model(inputs, training=False), jit_compile=xla, autograph=False
        )
        self._embed = tf.function(
            lambda inputs: model.backbone(inputs, training=False)["pooled_output"],
            jit_compile=xla,
            autograph=False,
        )

    @classmethod
    def from_model(cls, model, export_settings, xla=False, run=None):
        """`export.top_k` candidates per [MASK]; every other setting is the
        model's preprocessor's."""
        return cls(model, top_k=export_settings["top_k"], xla=xla)

    def sample_requests(self):
        """Two-row requests for each endpoint, from the vocabulary's words."""
        w = sample_words(self.tokenizer)
        text = " ".join(w[:4])
        inputs = {
            "fill_mask": {
                "texts": [
                    f"{w[0]} {MASK_TOKEN} {w[1]} {w[2]}.",
                    f"{MASK_TOKEN} {w[3]} {MASK_TOKEN}",
                ]
            },
            "embed": {"texts": [text, ""]},
            "classify": {"texts": [text, " ".join(w[4:6])]},
            "tag": {"texts": [f"{w[0].capitalize()} {w[1]}, {w[2]} {w[3]}.", w[4]]},
            "answer": {
                "questions": [f"what does {w[0]} {w[1]}?", f"{w[2]}?"],
                "contexts": [
                    f"{w[0]} {w[1]} {w[5]}. {w[3]} {w[4]} {w[6]}.",
                    " ".join(w[(i * 7) % 12] for i in range(80)) + ".",
                ],
            },
        }
        if self.pairs:
            inputs["classify"]["text_pairs"] = [" ".join(w[6:9]), ""]
        requests = [{"signature_name": name, "inputs": inputs[name]} for name in self.input_specs()]
        return requests + [{"signature_name": SERVING_DEFAULT, "inputs": requests[0]["inputs"]}]

    @property
    def kind(self):
        return type(self.model).__name__

    def input_specs(self):
        """`{signature: {input: TensorSpec}}`, the default signature first."""
        main = {
            "BertPretrainer": {"fill_mask": {"texts": _TEXTS}},
            "BertClassifier": {
                "classify": {
                    "texts": _TEXTS,
                    **({"text_pairs": _strings("text_pairs")} if self.pairs else {}),
                }
            },
            "BertTokenClassifier": {"tag": {"texts": _TEXTS}},
            "BertQuestionAnswerer": {
                "answer": {"questions": _strings("questions"), "contexts": _strings("contexts")}
            },
        }[self.kind]
        return {**main, "embed": {"texts": _TEXTS}}

    # --- Signatures ------------------------------------------------------------

    def embed(self, texts):
        texts = as_rows(texts, "texts")
        inputs = self.preprocessor.text_inputs(valid_utf8(texts))
        return {"embedding": tf.cast(self._embed(inputs), tf.float32)}

    def classify(self, texts, text_pairs=None):
        texts = as_rows(texts, "texts")
        if text_pairs is not None:
            text_pairs = valid_utf8(
                one_per_row(text_pairs, tf.shape(texts)[0], "text_pairs", "text")
            )
        inputs = self.preprocessor.text_inputs(valid_utf8(texts), text_pairs)
        probabilities = tf.nn.softmax(tf.cast(self._call(inputs), tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        labels = tf.constant(list(self.model.labels))
        return {
            "label": tf.gather(labels, label_id),
            "label_id": label_id,
            "probabilities": probabilities,
        }

    def tag(self, texts):
        words = self.preprocessor.split_words(valid_utf8(as_rows(texts, "texts")))
        inputs, first = self.preprocessor.word_inputs(words)
        best = tf.argmax(self._call(inputs), axis=-1, output_type=tf.int32)  # [B, L]
        positions = first.flat_values
        rows = tf.cast(first.value_rowids(), tf.int32)
        tag_ids = tf.gather_nd(best, tf.stack([rows, tf.maximum(positions, 0)], axis=1))
        flat_tags = tf.where(
            positions >= 0, tf.gather(tf.constant(list(self.model.labels)), tag_ids), "O"
        )
        tags = words.with_flat_values(flat_tags)
        return {
            "tokens": words.to_tensor(default_value=""),
            "tags": tags.to_tensor(default_value=""),
            "num_tokens": tf.cast(words.row_lengths(), tf.int32),
        }

    def answer(self, questions, contexts):
        questions = valid_utf8(as_rows(questions, "questions"))
        contexts = valid_utf8(one_per_row(contexts, tf.shape(questions)[0], "contexts", "question"))
        windows = self.preprocessor.windows(questions, contexts)
        inputs = {k: windows[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        logits = self._call(inputs)
        best = qa_answers.best_answers(
            logits["start_logits"],
            logits["end_logits"],
            windows,
            contexts,
            max_answer_tokens=self.preprocessor.max_answer_tokens,
            batch_size=tf.shape(questions)[0],
        )
        return {
            "answer": best["answers"],
            "score": tf.cast(best["scores"], tf.float32),
            "start_byte": tf.cast(best["byte_starts"], tf.int32),
            "end_byte": tf.cast(best["byte_ends"], tf.int32),
        }

    def fill_mask(self, texts):
        inputs = self.preprocessor(valid_utf8(as_rows(texts, "texts")))
        # Unused mask slots point at [CLS] (position 0, never a [MASK]).
        used = inputs["mask_positions"] > 0
        count = tf.reduce_sum(tf.cast(used, tf.int32), axis=1)
        logits = self._call(inputs)["mlm"]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, token_ids = tf.math.top_k(probabilities, k=self.top_k)
        tokens = self.tokenizer.id_to_token(token_ids)
        used = used[:, :, None]
        return {
            "tokens": tf.where(used, tokens, ""),
            "scores": tf.where(used, scores, 0.0),
            "mask_count": count,
        }


def sample_words(tokenizer, count=12):
    """`count` words of the vocabulary (alphabetic, longer than 2 letters if it has
    any), repeated as needed, for the sample requests."""
    vocabulary = tokenizer.get_vocabulary()[5:]
    words = [t for t in vocabulary if t.isalpha() and len(t) > 2] or [
        t for t in vocabulary if t.isalpha()
    ]
    return [words[i % len(words)] for i in range(count)] if words else ["a"] * count
