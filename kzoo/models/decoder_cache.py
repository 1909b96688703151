"""The decoding cache of encoder-decoder backbones, shared by every such family.

A cache is a dict whose tensors all have the batch first, so beam search can
reorder it: `"self_attention"`, one `(batch, 2, max_length, num_heads, head_dim)`
key/value cache per decoder block; `"cross_attention"`, each block's keys/values
of the encoder output, `(batch, 2, source_length, num_heads, head_dim)`,
projected once; and `"encoder_padding_mask"`, `(batch, source_length)`. Per-block
tensors (not one stacked tensor) let every step write its new entries in place
rather than re-stacking the blocks.
"""

from keras import ops

from kzoo.layers.cache_buffers import empty_cache


def encoder_decoder_cache(
    blocks, encoder_output, encoder_padding_mask, max_length, head_shape, dtype
):
    """The cache of `TransformerDecoderBlock`s `blocks` (with cross-attention) for
    `max_length` target positions: empty self-attention caches of
    `(num_heads, head_dim)` `head_shape` and `dtype`, and the cross-attention
    keys/values of `encoder_output`."""
    shape = (ops.shape(encoder_output)[0], 2, max_length, *head_shape)
    return {
        "self_attention": [empty_cache(shape, dtype) for _ in blocks],
        "cross_attention": [
            block.compute_cross_attention_cache(encoder_output) for block in blocks
        ],
        "encoder_padding_mask": ops.cast(encoder_padding_mask, "int32"),
    }


def decode_blocks_with_cache(blocks, x, cache, index, **block_kwargs):
    """Runs `blocks` on target hidden states `x` at positions `index..` against
    `cache` (see `encoder_decoder_cache`).

    Returns:
        `(x, cache)`: the last block's output and the cache with the
        self-attention entries of those positions written.
    """
    layer_caches = []
    for block, self_cache, cross_cache in zip(
        blocks, cache["self_attention"], cache["cross_attention"]
    ):
        x, layer_cache = block(
            x,
            encoder_padding_mask=cache["encoder_padding_mask"],
            self_attention_cache=self_cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_cache,
            **block_kwargs,
        )
        layer_caches.append(layer_cache)
    return x, {**cache, "self_attention": layer_caches}
