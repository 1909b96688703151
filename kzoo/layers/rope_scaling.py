"""Rotary frequencies scaled for long contexts, as a checkpoint's `rope_scaling` says.

The formulas are those of Hugging Face `transformers`' `modeling_rope_utils.py`
(`linear`, `llama3`, `yarn`), computed once in NumPy from the configuration, so
the layer that applies them stays a few `keras.ops`.
"""

import math

import numpy as np

ROPE_TYPES = ("default", "linear", "llama3", "yarn")
_REQUIRED = {
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
}


def rope_type(scaling):
    """The `rope_type` of a `rope_scaling` dict (or its older `type` key); `"default"`
    for None.

    Raises:
        ValueError: An unknown type or a missing key; the message names what is valid.
    """
    if scaling is None:
        return "default"
    if not isinstance(scaling, dict):
        raise ValueError(f"rope_scaling: must be a dict or None; received {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_TYPES:
        raise ValueError(f"rope_scaling.rope_type: must be one of {ROPE_TYPES}; received {kind!r}")
    missing = [key for key in _REQUIRED.get(kind, ()) if scaling.get(key) is None]
    if missing:
        raise ValueError(f"rope_scaling: rope_type {kind!r} needs {missing}; received {scaling}")
    return kind


def _llama3(inverse_freq, scaling):
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    wavelength = 2 * math.pi / inverse_freq
    # Long wavelengths (low frequencies) are interpolated, short ones kept, and
    # the band between blends the two.
    scaled = np.where(wavelength > old_context / low, inverse_freq / factor, inverse_freq)
    smooth = (old_context / wavelength - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelength >= old_context / high) & (wavelength <= old_context / low)
    return np.where(is_medium, smoothed, scaled)


def _yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn(head_dim, base, scaling):
    factor = scaling["factor"]
    attention_factor = scaling.get("attention_factor")
    mscale, mscale_all_dim = scaling.get("mscale"), scaling.get("mscale_all_dim")
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim)
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast = scaling.get("beta_fast") or 32
    beta_slow = scaling.get("beta_slow") or 1
    context = scaling["original_max_position_embeddings"]

    def correction_dim(rotations):
        return head_dim * math.log(context / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # no division by zero
    ramp = np.clip((np.arange(head_dim // 2, dtype="float32") - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp  # 1: keep the frequency, 0: interpolate it
    pos_freqs = base ** (np.arange(0, head_dim, 2, dtype="float32") / head_dim)
    inverse_freq = (1 / (factor * pos_freqs)) * (1 - extrapolation) + (
        1 / pos_freqs
    ) * extrapolation
    return inverse_freq, float(attention_factor)


def rotary_frequencies(head_dim, max_wavelength=10000, scaling=None):
    """The rotary inverse frequencies and the factor applied to cos and sin.

    Args:
        head_dim: Features per head (even); one frequency per pair.
        max_wavelength: The base `theta` (`rope_theta`).
        scaling: A Hugging Face `rope_scaling` dict or None: `{"rope_type":
            "linear", "factor"}`, `{"rope_type": "llama3", "factor",
            "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}`
            or `{"rope_type": "yarn", "factor", "original_max_position_embeddings",
            optional "beta_fast", "beta_slow", "attention_factor", "mscale",
            "mscale_all_dim", "truncate"}`.

    Returns:
        `(inverse_freq, attention_factor)`: float32 `(head_dim // 2,)` and a float
        (1.0 except for YaRN).

    Example:
    >>> inverse_freq, factor = rotary_frequencies(8, 10000, {"rope_type": "linear", "factor": 2.0})
    >>> [round(float(f), 4) for f in inverse_freq], factor
    ([0.5, 0.05, 0.005, 0.0005], 1.0)
    """
    kind = rope_type(scaling)
    exponents = np.arange(0, head_dim, 2, dtype="float32") / np.float32(head_dim)
    inverse_freq = 1.0 / (np.float32(max_wavelength) ** exponents)
    attention_factor = 1.0
    if kind == "linear":
        inverse_freq = inverse_freq / scaling["factor"]
    elif kind == "llama3":
        inverse_freq = _llama3(inverse_freq, scaling)
    elif kind == "yarn":
        inverse_freq, attention_factor = _yarn(head_dim, max_wavelength, scaling)
    return np.asarray(inverse_freq, "float32"), attention_factor
