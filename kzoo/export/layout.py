"""The layout of an exported model version, as TF Serving and kzoo read it.

    OUT/models.config                          ModelServerConfig naming every model
    OUT/NAME/VERSION/saved_model.pb            the SavedModel (graph + signatures)
    OUT/NAME/VERSION/variables/                its weights
    OUT/NAME/VERSION/assets.extra/
        tf_serving_warmup_requests             TFRecord of PredictionLog, replayed
                                               by TF Serving before serving
        example_requests/SIGNATURE.json        REST :predict bodies
        expected_outputs.json                  the Keras model's answers to them
        kzoo_export.json                       run, limits and signature specs

Kept free of TensorFlow imports so `kzoo check-serving` starts fast.
"""

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
EXAMPLES_DIR = "example_requests"
EXPECTED_FILE = "expected_outputs.json"
EXPORT_INFO_FILE = "kzoo_export.json"
MODELS_CONFIG = "models.config"
# Where `OUT` is mounted in the TF Serving container (`-v $PWD/OUT:/models`).
CONTAINER_MODELS_DIR = "/models"
