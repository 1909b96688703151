"""Named T5 sizes (architectures only, no weights: kzoo downloads nothing).

`small`, `base` and `large` are the shapes of the T5 paper (v1.0: relu, tied
head; pass `activation="gelu_approximate", use_gated_activation=True,
tie_embedding_weights=False` for v1.1); `tiny` is for tests and CPU recipes.

Example:
>>> from kzoo.models import T5Backbone
>>> backbone = T5Backbone(vocabulary_size=100, **T5_SIZES["tiny"])
>>> backbone.num_layers, backbone.hidden_dim
(2, 128)
"""

T5_SIZES = {
    "tiny": dict(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
    "small": dict(num_layers=6, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "base": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "large": dict(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
}
