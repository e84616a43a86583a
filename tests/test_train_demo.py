"""The demo (``make demo``): its time budget arithmetic, and (slow) a miniature end-to-end run."""
import json
import os

import pytest

from gluon_resnetv2.demo import MAX_EPOCHS, MIN_EPOCHS, epochs_for_budget

FMNIST = "/usr/share/datasets/fashion-mnist"


def test_epochs_fit_the_budget():
    # 630 s at 150 images/s per process: about 1.45 epochs; faster machines get more, capped at 2
    assert epochs_for_budget(630, 150) == pytest.approx(1.45, abs=0.05)
    assert epochs_for_budget(630, 10_000) == MAX_EPOCHS
    assert epochs_for_budget(630, 10) == MIN_EPOCHS
    epochs = [epochs_for_budget(630, s) for s in (50, 100, 150, 200)]
    assert epochs == sorted(epochs)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")),
                    reason="Fashion-MNIST not installed (make dataset)")
def test_demo_end_to_end(tmp_path, capsys):
    from gluon_resnetv2.demo import main

    assert main(["--out", str(tmp_path), "--epochs", "1", "--train-subset", "512", "--log-interval", "1",
                 "--eval-interval", "2", "--eval-subset", "64"]) == 0
    assert os.path.getsize(tmp_path / "figure1.png") > 10_000
    out = capsys.readouterr().out
    assert "figure1.png" in out and "original ResNet-20 (v1)" in out and "pre-activation ResNet-20 (v2)" in out
    for model in ("cifar_resnet20_v1", "cifar_resnet20_v2"):
        with open(tmp_path / "runs" / model / "status.json") as handle:
            assert json.load(handle)["status"] == "finished"
