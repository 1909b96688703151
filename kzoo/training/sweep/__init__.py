"""`kzoo sweep`: the grid (`grid`), the trials (`runner`) and their HPARAMS
records (`hparams`)."""
