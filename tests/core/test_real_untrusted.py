"""Real files from wheels that paramedit must name rightly rather than call corrupt."""
import pytest

from app.__main__ import main
from app.core.errors import CheckpointError
from app.core.formats import load_document
from tests.third_party import wheel_file


@pytest.fixture(scope="module")
def accentor():
    return wheel_file("silero-stress==1.5", "silero_stress/data/accentor-bel.pt")


def test_silero_stress_torch_package_is_named(accentor, capsys):
    with pytest.raises(CheckpointError, match="torch.package archive"):
        load_document(str(accentor))
    assert main(["inspect", str(accentor)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PackageImporter" in err and "corrupt" not in err


def test_sevenn_checkpoint_with_numpy_config_opens_without_trust(capsys):
    import json

    import torch
    path = wheel_file("sevenn==0.13.0",
                      "sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth")
    with pytest.raises(Exception, match="numpy"):
        torch.load(path, weights_only=True, map_location="cpu")  # what torch alone says
    assert main(["inspect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["entries"]["epoch"] == "int: 600"
    assert out["entries"]["config.shift"].startswith("ndarray: array([ -5.06")
    assert len(out["tensors"]) == 223
