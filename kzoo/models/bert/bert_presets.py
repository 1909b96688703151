"""Named BERT encoder sizes: Google's BERT miniatures, base and large.

Architectures only (no weights: kzoo downloads nothing). `tiny` to `medium` are
the sizes of Turc et al., "Well-Read Students Learn Better" (2019); `base` and
`large` those of the BERT paper. The vocabulary comes from the tokenizer.

Example:
>>> from kzoo.models import BertBackbone
>>> backbone = BertBackbone(vocabulary_size=100, **BERT_SIZES["tiny"])
>>> backbone.num_layers, backbone.hidden_dim
(2, 128)
"""

BERT_SIZES = {
    "tiny": dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
    "mini": dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "small": dict(num_layers=4, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "medium": dict(num_layers=8, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "base": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "large": dict(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
}
