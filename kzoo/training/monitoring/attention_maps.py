"""Attention heatmaps of a fixed probe input, for TensorBoard's Images dashboard.

At the start of training `AttentionMaps` takes a probe: the first example of
the validation data (of the training data when there is none), without its
padding and cut to its first `PROBE_TOKENS` tokens per sequence (encoder and
decoder apart). At the end of every epoch it runs the model's backbone on the
probe (eagerly, `training=False`), records the attention probabilities of every
`kzoo.layers.MultiHeadAttention` (`kzoo.layers.attention.record_attention`) and
writes one image per attention layer, tagged by its place in the model:
`transformer_layer_0/self_attention` (GPT, BERT),
`decoder_layer_1/cross_attention` (seq2seq), `transformer_encoder_layer_0/...`
(T5). Recurrent models have no such layers and get no images.

In an image the heads stand side by side, left to right, separated by a blue
bar; in each, row `i` is query position `i` and column `j` key position `j`,
coloured from black (0) through red and yellow to white (the head's largest
probability). The probe's tokens are written once as text (tag `probe`).
"""

import keras
import numpy as np
import tensorflow as tf

from kzoo.layers.attention import MultiHeadAttention, record_attention
from kzoo.training.callbacks import SummaryCallback, warns_instead_of_failing
from kzoo.training.monitoring.embedding_projector import metadata_label

PROBE_TOKENS = 32
MAX_IMAGE_WIDTH = 1024  # pixels; cells shrink (down to 1 px) to stay within it
MAX_CELL = 8  # pixels per attention weight
GAP = 2  # pixels between heads
GAP_COLOR = (40, 80, 200)
_SEQUENCE_KEYS = ("token_ids", "segment_ids", "padding_mask")


def attention_layers_by_name(model):
    """`{name: MultiHeadAttention}` under `model`, named by the path of layer
    names that leads to it, models (auto-numbered backbones) left out:
    `"transformer_layer_0/self_attention"`."""
    found = {}

    def visit(layer, path):
        for sublayer in layer._flatten_layers(include_self=False, recursive=False):
            sub_path = path if isinstance(sublayer, keras.Model) else path + [sublayer.name]
            if isinstance(sublayer, MultiHeadAttention):
                found.setdefault("/".join(sub_path), sublayer)
            else:
                visit(sublayer, sub_path)

    visit(model, [])
    return found


def probe_inputs(features, names, max_tokens=PROBE_TOKENS):
    """The first example of the batch `features`, for the inputs `names`, each
    sequence without its padding (a right-padded `*padding_mask`) and cut to
    `max_tokens`: `{name: array of shape (1, length)}`.

    Example:
    >>> features = {"token_ids": np.array([[5, 6, 7, 0], [1, 2, 3, 4]]),
    ...             "padding_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]]),
    ...             "labels": np.array([1, 0])}
    >>> probe = probe_inputs(features, ["token_ids", "padding_mask"], max_tokens=2)
    >>> probe["token_ids"].tolist(), probe["padding_mask"].tolist()
    ([[5, 6]], [[1, 1]])
    """
    first = {name: np.asarray(features[name])[:1] for name in names}
    probe = {}
    for name, value in first.items():
        prefix = next((name[: -len(key)] for key in _SEQUENCE_KEYS if name.endswith(key)), name)
        mask = first.get(prefix + "padding_mask")
        length = value.shape[1] if mask is None else max(int(np.count_nonzero(mask[0])), 1)
        probe[name] = value[:, : min(length, max_tokens)]
    return probe


def heatmap_image(probabilities):
    """`(num_heads, query_length, key_length)` probabilities -> a uint8 RGB
    image `(height, width, 3)`, heads side by side (see the module docstring).

    Example:
    >>> heatmap_image(np.full((2, 3, 4), 0.25)).shape  # 8-pixel cells, a 2-pixel gap
    (24, 66, 3)
    """
    heads, queries, keys = probabilities.shape
    cell = max(1, min(MAX_CELL, (MAX_IMAGE_WIDTH - (heads - 1) * GAP) // (heads * keys)))
    peak = probabilities.max(axis=(1, 2), keepdims=True)
    scaled = np.clip(probabilities / np.maximum(peak, 1e-12), 0.0, 1.0)
    # The "hot" colour map: red rises first, then green, then blue.
    colored = np.stack([np.clip(3 * scaled - offset, 0, 1) for offset in (0, 1, 2)], -1)
    colored = (colored * 255).round().astype(np.uint8).repeat(cell, 1).repeat(cell, 2)
    gap = np.empty((queries * cell, GAP, 3), np.uint8)
    gap[:] = GAP_COLOR
    panels = [colored[0]]
    for head in colored[1:]:
        panels += [gap, head]
    return np.concatenate(panels, axis=1)


def _first_batch_features(dataset):
    if isinstance(dataset, tf.data.Dataset):  # No iterator: less start-up work.
        batch = dataset.take(1).get_single_element()
    else:
        batch = next(iter(dataset))
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class AttentionMaps(SummaryCallback):
    """Writes attention heatmaps of a fixed probe every epoch (module docstring).

    Args:
        log_dir: Event directory (e.g. `RUN/tensorboard/attention`).
        dataset: Batches `(features, ...)` whose first example is the probe.
        vocabulary: Token strings indexed by id, to write the probe as text.
        max_tokens: Tokens kept per probe sequence.
    """

    def __init__(self, log_dir, dataset, vocabulary=None, max_tokens=PROBE_TOKENS):
        super().__init__(log_dir)
        self.dataset = dataset
        self.vocabulary = vocabulary
        self.max_tokens = max_tokens
        self.probe = None

    @warns_instead_of_failing("take the attention probe")
    def on_train_begin(self, logs=None):
        self.owner = getattr(self.model, "backbone", self.model)
        self.layers = attention_layers_by_name(self.owner)
        if not self.layers or self.probe is not None:
            return
        self.probe = probe_inputs(
            _first_batch_features(self.dataset), list(self.owner.input), self.max_tokens
        )
        if self.vocabulary is not None:
            with self.summaries():
                tf.summary.text("probe", self._probe_text(), step=0)

    @warns_instead_of_failing("write the attention maps")
    def on_epoch_end(self, epoch, logs=None):
        if self.probe is None:
            return
        with record_attention(self.owner) as records:
            self.owner(self.probe, training=False)
        with self.summaries():
            for name, layer in self.layers.items():
                if records[layer]:
                    probabilities = keras.ops.convert_to_numpy(records[layer][0])[0]
                    tf.summary.image(name, heatmap_image(probabilities)[None], step=epoch)

    def _probe_text(self):
        lines = []
        for name, ids in self.probe.items():
            if name.endswith("token_ids"):
                tokens = [
                    metadata_label(self.vocabulary[i])
                    if 0 <= i < len(self.vocabulary)
                    else f"<id {i}>"
                    for i in ids[0].tolist()
                ]
                lines.append(
                    f"**{name}** ({len(tokens)} tokens): "
                    + " ".join(f"`{token}`" for token in tokens)
                )
        return "\n\n".join(lines)
