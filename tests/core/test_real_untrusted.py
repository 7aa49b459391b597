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
