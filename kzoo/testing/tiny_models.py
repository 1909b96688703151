"""The sizes of the tiny Transformers that model tests build."""

# Two layers of two heads, width 16: every backbone's tests use these sizes (plus
# their own vocabulary, lengths and dropout) unless a test needs others.
TINY_TRANSFORMER = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32)
