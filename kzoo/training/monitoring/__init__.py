"""What TensorBoard shows beyond losses: the `monitor` section's callbacks
(`monitors`) and one module per view (graph, projector, attention maps, profile)."""
