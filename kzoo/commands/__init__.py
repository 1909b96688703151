"""What the `kzoo` commands (`kzoo.cli`) share and the larger commands themselves:
quiet TensorFlow start-up, argument checks for directories, `kzoo generate` and
`kzoo tensorboard`."""
