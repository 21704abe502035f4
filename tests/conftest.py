"""Shared fixtures: a small synthetic dataset made once per test session (real mp4/AAC files)."""

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny `hearflow synth` dataset: 16 train, 4 val, 8 test clips of 2 s."""
    from hearflow.media.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(duration=2.0), train=16, val=4, test=8, seed=7, workers=2, progress=False)
    return out
