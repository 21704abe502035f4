"""Config loading: YAML + dotted overrides, errors that name the key and the file."""

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from hearflow import config
from hearflow.errors import ConfigError
from hearflow.media.preprocess import PreprocessConfig, htf_compat


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    name: str = "adam"
    kind: Literal["a", "b"] = "a"
    steps: list[int] = field(default_factory=lambda: [1, 2])


@dataclass(frozen=True)
class Outer:
    epochs: int = 3
    verbose: bool = False
    inner: Inner = field(default_factory=Inner)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    rate: int | Literal["native"] = 22050


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    assert config.load(Outer) == Outer()


def test_yaml_and_overrides(tmp_path):
    p = write(tmp_path, "epochs: 5\ninner:\n  lr: 0.01\n  kind: b\n")
    cfg = config.load(Outer, p, ["inner.name=sgd", "verbose=true", "inner.lr=1e-4", "inner.steps=[3, 4, 5]"])
    assert cfg.epochs == 5 and cfg.verbose is True
    assert cfg.inner == Inner(lr=1e-4, name="sgd", kind="b", steps=[3, 4, 5])


def test_int_promotes_to_float_and_union(tmp_path):
    cfg = config.load(Outer, write(tmp_path, "inner: {lr: 1}\nrate: native\n"))
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.rate == "native"
    assert config.load(Outer, None, ["rate=16000"]).rate == 16000


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "inner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        config.load(Outer, p)
    msg = str(e.value)
    assert str(p) in msg and "'inner.lrr'" in msg and "lr" in msg


def test_wrong_type_names_key_and_file(tmp_path):
    p = write(tmp_path, "epochs: three\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: 'epochs' must be int, got 'three'"):
        config.load(Outer, p)
    with pytest.raises(ConfigError, match=r"'verbose' must be bool"):
        config.load(Outer, write(tmp_path, "verbose: 1\n"))
    with pytest.raises(ConfigError, match=r"'inner.kind' must be 'a' or 'b', got 'c'"):
        config.load(Outer, None, ["inner.kind=c"])


def test_override_errors():
    with pytest.raises(ConfigError, match=r"command line: unknown key 'inner.nope'"):
        config.load(Outer, None, ["inner.nope=1"])
    with pytest.raises(ConfigError, match="not of the form"):
        config.load(Outer, None, ["epochs"])
    with pytest.raises(ConfigError, match=r"'epochs.x'.*not a section"):
        config.load(Outer, None, ["epochs.x=1"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(Outer, tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml:2:1: expected the node content"):
        config.load(Outer, write(tmp_path, "a: [1,\n"))
    with pytest.raises(ConfigError, match=r"c\.yaml:2:5: character U\+0007 is not allowed"):
        config.load(Outer, write(tmp_path, "epochs: 3\nrate\a: 1\n"))
    p = tmp_path / "latin1.yaml"
    p.write_bytes("epochs: 3\ninner:\n  name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml:3:12: not UTF-8 text \(byte 0xe9"):
        config.load(Outer, p)


def test_override_that_is_not_yaml_names_the_override_and_column():
    with pytest.raises(ConfigError, match=r"override 'inner\.steps=\[1, 2' is not valid YAML "
                                          r"\(column 6 of the value\): expected"):
        config.load(Outer, None, ["inner.steps=[1, 2"])


def test_post_init_validation_is_reported(tmp_path):
    p = write(tmp_path, "preprocess:\n  noverlap: 600\n")
    with pytest.raises(ConfigError, match="noverlap must be smaller than nperseg"):
        config.load(Outer, p)


def test_preset_by_name_then_override(tmp_path):
    p = write(tmp_path, "preprocess: htf_compat\n")
    cfg = config.load(Outer, p, ["preprocess.image_size=112"])
    assert cfg.preprocess == htf_compat().replace(image_size=112)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        config.load(Outer, write(tmp_path, "preprocess: nope\n"))


def test_save_load_round_trip(tmp_path):
    cfg = config.load(Outer, None, ["inner.lr=0.5", "preprocess=htf_compat", "rate=native"])
    path = config.save(cfg, tmp_path / "saved.yaml")
    assert config.load(Outer, path) == cfg


def test_preprocess_derived_sizes():
    p = PreprocessConfig()
    assert p.window_samples(22050) == 66150
    assert (p.spectrogram_bins, p.spectrogram_frames(22050)) == (257, 276)
    assert p.fingerprint() == PreprocessConfig().fingerprint() != htf_compat().fingerprint()


# --------------------------------------------------------------------------- through the CLI
BROKEN = {
    # name: (text, line:column as an editor shows it, PyYAML's problem)
    "indent": ("data:\n  path: data/x\n cache: y\n", "3:2", "expected <block end>, but found '<block mapping start>'"),
    "tab": ("train:\n\tepochs: 2\n", "2:1", "found character '\\t' that cannot start any token"),
    "quote": ('train:\n  out: "runs/x\n  epochs: 2\n', "2:8",
              "found unexpected end of stream while scanning a quoted scalar (noticed at 4:1)"),
    "colon": ("train:\n  out: runs: x\n", "2:12", "mapping values are not allowed here"),
}


def hearflow_cli(*args, cwd):
    """`hearflow ARGS` in a fresh process running this checkout, from ``cwd``."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-m", "hearflow.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize("name, command", [(n, "train") for n in sorted(BROKEN)]
                         + [("tab", "synth"), ("quote", "prepare")])
def test_cli_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path, name, command):
    text, where, problem = BROKEN[name]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / f"{name}.yaml").write_text(text)
    rel = f"configs/{name}.yaml"  # named as the user typed it
    args = {"train": ["train", rel], "synth": ["synth", "out", "--config", rel],
            "prepare": ["prepare", "data", "out", "--preprocess", rel]}[command]
    proc = hearflow_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.strip() == f"error: {rel}:{where}: {problem}"
    assert not (tmp_path / "out").exists()  # failed before doing anything
