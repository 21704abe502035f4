"""scripts/twins_diagnosis.py on a generated twins dataset: the flow the model sees is large
inside the moving twin's box and not inside the static one's, whichever of them sounds."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from hearflow import config
from hearflow.media import synth
from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.synth import SynthConfig
from hearflow.media.synth.config import TWINS_REGIMES
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "twins_diagnosis.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_flow_input_marks_the_moving_twin_and_a_flowless_model_is_refused(tmp_path):
    only_twins = [f"regime_weights.{r}=0" for r in synth.REGIMES if r not in TWINS_REGIMES]
    cfg = config.load(SynthConfig, REPO / "configs" / "synth_twins.yaml", ["width=128", "height=128", *only_twins])
    synth.generate(tmp_path / "data", cfg, train=0, val=0, test=6, seed=1, workers=1, progress=False)
    pre = PreprocessConfig(image_size=64)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "flow", create_model(ModelConfig(backbone="resnet18_w16", flow="cnn")), pre)
    save_checkpoint(tmp_path / "noflow", create_model(ModelConfig(backbone="resnet18_w16", flow="none")), pre)

    done = run(tmp_path / "flow", "--data", tmp_path / "data", "--json", tmp_path / "d.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "d.json").read_text())
    result = report[str(tmp_path / "flow")]["twins"]
    assert sorted(result) == sorted(TWINS_REGIMES) and sum(r["n"] for r in result.values()) == 6
    src, dis = result["twins_source_moves"], result["twins_distractor_moves"]
    assert src["flow_sounding"] > 5 * src["flow_silent"]
    assert dis["flow_silent"] > 5 * dis["flow_sounding"]
    for r in result.values():
        assert 0 <= r["picks_sounding"] <= 1 and 0 <= r["picks_sounding0"] <= 1
    assert "| twins_source_moves | 2 |" in done.stdout
    # every test clip scored with its flow and with zero flow, per regime
    without = report[str(tmp_path / "flow")]["without_flow"]
    assert sorted(without) == sorted(TWINS_REGIMES)
    assert all(0 <= v <= 1 for r in without.values() for pair in r.values() for v in pair)
    # the loss cannot tell a map that lights both identical twins from one that lights the sounding one
    loss = report["loss_of_ideal_maps"]
    assert abs(loss["both"] - loss["sounding_only"]) < 1e-3 and "HTF loss of ideal maps" in done.stdout

    refused = run(tmp_path / "noflow", "--data", tmp_path / "data")
    assert refused.returncode == 1 and "does not use flow" in refused.stderr
