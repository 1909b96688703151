"""tf.data input pipelines and the built-in corpora."""
