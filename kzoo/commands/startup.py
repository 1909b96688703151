"""Starting TensorFlow for a `kzoo` command without its C++ start-up noise."""

import os
import re
import sys
import tempfile

# Messages TensorFlow's C++ libraries log while they load and look for devices, in
# absl's format ("I0000 00:00:1796620680.247408  4626 cudart_stub.cc:31] ...", with
# any continuation lines), and absl's notice before them. TF_CPP_MIN_LOG_LEVEL does
# not silence them.
_CPP_LOG_LINE = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
)
# What Python writes to stderr: a warning or a traceback ends a C++ message.
_PYTHON_LINE = re.compile(r"\S.*:\d+: \w*Warning: |Traceback \(most recent call last\)")


def without_cpp_log(lines):
    """`lines` less the C++ log messages (each with its continuation lines).

    Example:
    >>> without_cpp_log(["I0000 00:00:1796620680.247408  4626 guard.cc:227] Built for\\n",
    ...                  "To enable AVX2 FMA, rebuild\\n",
    ...                  "x.py:3: UserWarning: careful\\n", "  warn()\\n"])
    ['x.py:3: UserWarning: careful\\n', '  warn()\\n']
    """
    kept, in_message = [], False
    for line in lines:
        if _CPP_LOG_LINE.match(line):
            in_message = True
        elif in_message and _PYTHON_LINE.match(line):
            in_message = False
        if not in_message:
            kept.append(line)
    return kept


def quiet_tensorflow():
    """Asks TensorFlow's C++ libraries for warnings and errors only (unless set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def start_tensorflow():
    """Imports TensorFlow and Keras and finds the devices, with the C++ libraries'
    start-up log lines hidden (shown with TF_CPP_MIN_LOG_LEVEL=0 or 1): on a machine
    without a GPU they are 4-5 lines ("Could not find cuda drivers", "failed call to
    cuInit") before every command's output or error. Anything else written to
    stderr meanwhile (Python warnings, an import error) is passed on."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                import keras  # noqa: F401
                import tensorflow as tf

                tf.config.list_physical_devices()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                captured.seek(0)
                lines = captured.read().decode("utf-8", "replace").splitlines(True)
                sys.stderr.write("".join(without_cpp_log(lines)))
    finally:
        os.close(saved)
