"""scripts/tensorboard_screenshot.sh: TensorBoard rendered by headless Chromium."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from kzoo.testing import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "tensorboard_screenshot.sh")
CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (path := shutil.which(name))
    ),
    None,
)


def write_run(run_dir, steps=20):
    """A run directory's TensorBoard scalars, as a training run writes them."""
    for group, offset in (("train", 0.0), ("validation", 0.3)):
        writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard", group))
        with writer.as_default():
            for step in range(steps):
                tf.summary.scalar("epoch_loss", 4.0 * np.exp(-step / 6) + 1 + offset, step)
        writer.close()


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary installed (Debian: apt-get install chromium)"
)
def test_screenshot_shows_the_rendered_scalar_charts(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "scalars.png"
    write_run(run_dir)
    result = subprocess.run(
        ["bash", SCRIPT, str(run_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TAG_FILTER": "^epoch_loss$"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    image = tf.io.decode_png(out.read_bytes(), channels=3).numpy()
    assert image.shape == (1000, 1400, 3)
    # Not a blank or half-loaded page: many colours (text, lines, anti-aliasing) ...
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 300
    # ... and the chart card is drawn: below the tag filter, left of the settings pane,
    # axis labels, grid lines and the legend (an empty, unloaded card is white).
    card = image[170:600, 290:700].astype(int)
    assert (card.sum(axis=-1) < 400).sum() > 1000
    # ... with the two runs' curves: the only saturated colours in the plot area
    # (grid lines and labels are grey).
    plot = image[215:450, 365:690].astype(int)
    assert ((plot.max(axis=-1) - plot.min(axis=-1)) > 80).sum() > 300


def test_missing_chromium_is_a_clear_error(tmp_path):
    # A PATH with the tools the script needs before it looks for a browser.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "basename"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "CHROMIUM"}
    result = subprocess.run(
        [str(bin_dir / "bash"), SCRIPT, str(run_dir), str(tmp_path / "out.png")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PATH": str(bin_dir)},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("tensorboard_screenshot: error: no chromium binary found")
    assert "apt-get install chromium" in result.stderr
    assert not (tmp_path / "out.png").exists()
