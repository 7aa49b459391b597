"""``main.py`` or ``main.py PATH`` starts the GUI without building argparse's parsers (issue 15:
the splash paints first); what it gets must be what the parsers would give."""
import pytest

from app.__main__ import COMMANDS, plain_gui_arguments
from app.cli_parser import parse_arguments


@pytest.mark.parametrize("argv", [[], ["model.pt"], ["a folder/with spaces"], [""], ["ïnspect"]])
def test_a_plain_start_gets_what_argparse_gives(argv):
    assert vars(plain_gui_arguments(argv)) == vars(parse_arguments(argv, COMMANDS))


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--version"], ["-"], ["--trust", "x.pt"],
                                  ["x.pt", "--trust"], ["a", "b"], *([c] for c in COMMANDS)])
def test_options_commands_and_more_arguments_are_left_to_argparse(argv):
    assert plain_gui_arguments(argv) is None
