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
(each its default), and `embed`. Texts are cut to the run's
`data.sequence_length` (pairs round-robin, questions to `data.max_query_tokens`,
long contexts split into windows of stride `data.doc_stride`); `tag` still returns
every word, `fill_mask` only the [MASK]s that fit.

Unusual inputs follow `input_policy`: invalid UTF-8 becomes U+FFFD (so `tokens`,
`answer` and the byte offsets refer to the text after that replacement); an empty
or whitespace-only text (or either side of a pair, a question or a context) packs
an empty segment and is answered like any other (`tag`: 0 words; `answer`: "" from
an empty context); 0 rows give 0 rows; `text_pairs` not one per text and
`contexts` not one per question are InvalidArgument naming the input.
"""

import tensorflow as tf

from kzoo.data import qa_answers, qa_windows
from kzoo.data.bert_inputs import pack_segments, split_words, text_inputs, word_inputs
from kzoo.export.input_policy import any_rank, as_rows, one_per_row, valid_utf8

MASK_TOKEN = "[MASK]"
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


class BertSignatures:
    """Builds the signature functions of a BERT task model and its tokenizer.

    Args:
        model: `BertPretrainer`, `BertClassifier`, `BertTokenClassifier` or
            `BertQuestionAnswerer`.
        tokenizer: Its `WordPieceTokenizer`.
        data_config: The run's `data` section (lengths, QA windows, pairs).
        top_k: Candidates per [MASK] for `fill_mask`.
        xla: Compile the encoder call with XLA.
    """

    def __init__(self, model, tokenizer, data_config, top_k=5, xla=False, pairs=False):
        self.model = model
        self.tokenizer = tokenizer
        self.data = data_config
        self.length = int(data_config["sequence_length"])
        self.top_k = int(top_k)
        self.pairs = pairs
        self._call = tf.function(
            lambda inputs: model(inputs, training=False), jit_compile=xla, autograph=False
        )
        self._embed = tf.function(
            lambda inputs: model.backbone(inputs, training=False)["pooled_output"],
            jit_compile=xla,
            autograph=False,
        )

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
        inputs = text_inputs(self.tokenizer, self.length, valid_utf8(texts))
        return {"embedding": tf.cast(self._embed(inputs), tf.float32)}

    def classify(self, texts, text_pairs=None):
        texts = as_rows(texts, "texts")
        if text_pairs is not None:
            text_pairs = valid_utf8(
                one_per_row(text_pairs, tf.shape(texts)[0], "text_pairs", "text")
            )
        inputs = text_inputs(self.tokenizer, self.length, valid_utf8(texts), text_pairs)
        probabilities = tf.nn.softmax(tf.cast(self._call(inputs), tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        labels = tf.constant(list(self.model.labels))
        return {
            "label": tf.gather(labels, label_id),
            "label_id": label_id,
            "probabilities": probabilities,
        }

    def tag(self, texts):
        words = split_words(valid_utf8(as_rows(texts, "texts")))
        inputs, first = word_inputs(self.tokenizer, self.length, words)
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
        data = self.data
        questions = valid_utf8(as_rows(questions, "questions"))
        contexts = valid_utf8(one_per_row(contexts, tf.shape(questions)[0], "contexts", "question"))
        windows = qa_windows.qa_windows(
            self.tokenizer,
            questions,
            contexts,
            sequence_length=self.length,
            max_query_tokens=data["max_query_tokens"],
            doc_stride=data["doc_stride"],
        )
        inputs = {k: windows[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        logits = self._call(inputs)
        best = qa_answers.best_answers(
            logits["start_logits"],
            logits["end_logits"],
            windows,
            contexts,
            max_answer_tokens=data["max_answer_tokens"],
            batch_size=tf.shape(questions)[0],
        )
        return {
            "answer": best["answers"],
            "score": tf.cast(best["scores"], tf.float32),
            "start_byte": tf.cast(best["byte_starts"], tf.int32),
            "end_byte": tf.cast(best["byte_ends"], tf.int32),
        }

    def fill_mask(self, texts):
        ids = self._tokenize_with_masks(as_rows(texts, "texts"))
        packed = pack_segments(self.tokenizer, self.length, [ids])
        is_mask = tf.equal(packed["token_ids"], int(self.tokenizer.mask_id))
        count = tf.reduce_sum(tf.cast(is_mask, tf.int32), axis=1)
        slots = tf.maximum(tf.reduce_max(count), 1)
        # Mask positions first, in order; unused slots point at [CLS] (ignored).
        order = tf.argsort(tf.cast(~is_mask, tf.int32), axis=1, stable=True)[:, :slots]
        used = tf.range(slots)[None, :] < count[:, None]
        positions = tf.where(used, order, 0)
        logits = self._call({**packed, "mask_positions": positions})["mlm"]
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        scores, token_ids = tf.math.top_k(probabilities, k=self.top_k)
        tokens = self.tokenizer.id_to_token(token_ids)
        used = used[:, :, None]
        return {
            "tokens": tf.where(used, tokens, ""),
            "scores": tf.where(used, scores, 0.0),
            "mask_count": count,
        }

    def _tokenize_with_masks(self, texts):
        """Ragged ids of `texts` with each literal "[MASK]" as the [MASK] id."""
        # [B, S]: S - 1 masks per row
        parts = tf.strings.split(valid_utf8(texts), MASK_TOKEN)
        rows = parts.value_rowids()
        index = tf.range(tf.size(rows, tf.int64)) - tf.gather(parts.row_starts(), rows)
        followed_by_mask = index < tf.gather(parts.row_lengths(), rows) - 1
        count = tf.cast(followed_by_mask, tf.int64)
        marks = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(count)], int(self.tokenizer.mask_id)), count
        )
        pieces = tf.concat(
            [tf.cast(self.tokenizer.tokenize(parts.flat_values), tf.int32), marks], axis=1
        )
        return tf.RaggedTensor.from_row_splits(pieces, parts.row_splits).merge_dims(1, 2)
