"""``FakePrompts``: the window's questions answered from a script, for tests.

A test passes it to ``MainWindow(prompts=...)`` (the ``window`` fixture does) and scripts the
answers by the ``Prompts`` method's name::

    window.prompts.answer(save_changes="cancel")
    window.prompts.answer(save_file=(str(out), ""), drop_entries=lambda keys: False)

An answer is a value, or a callable given the question's arguments. A list (``queue``) answers
one question after another. Every question is recorded in ``asked`` as ``(name, args)``. A
question with no answer fails the test at once instead of blocking on a real dialog. Notices
(``error``, and ``trust`` when not scripted) still open the real non-blocking boxes, so a test
can read and click them; ``errors`` records them too.
"""
from __future__ import annotations

from app.qt.prompts import Prompts

QUESTIONS = ("save_changes", "file_changed", "open_file", "open_folder", "save_file", "integer",
             "number", "choice", "drop_entries", "relative_names")


class Unscripted(AssertionError):
    """A question the test gave no answer to."""


class FakePrompts(Prompts):
    """Scripted answers to ``Prompts``' questions (see the module's docstring)."""

    def __init__(self, parent=None, **answers):
        super().__init__(parent)
        self.answers: dict = {}
        self.queues: dict[str, list] = {}
        self.asked: list[tuple[str, tuple]] = []
        self.errors: list[tuple[str, str, str]] = []
        self.answer(**answers)

    def answer(self, **answers) -> "FakePrompts":
        """Answer these questions (by method name) from now on."""
        unknown = set(answers) - set(QUESTIONS) - {"trust"}
        if unknown:
            raise TypeError(f"Prompts has no question {sorted(unknown)}")
        self.answers.update(answers)
        return self

    def queue(self, name: str, *answers) -> "FakePrompts":
        """Answer the next ``len(answers)`` ``name`` questions in turn (then ``answer``'s)."""
        self.queues.setdefault(name, []).extend(answers)
        return self

    def questions(self, name: str) -> list[tuple]:
        """The arguments of every ``name`` question asked so far."""
        return [args for asked, args in self.asked if asked == name]

    def _ask(self, name: str, *args):
        self.asked.append((name, args))
        if self.queues.get(name):
            reply = self.queues[name].pop(0)
        elif name in self.answers:
            reply = self.answers[name]
        else:
            raise Unscripted(f"unscripted question {name}{args!r}")
        return reply(*args) if callable(reply) else reply

    def error(self, title, message, name, details="", **kwargs):
        self.errors.append((name, title, message))
        return super().error(title, message, name, details, **kwargs)

    def trust(self, path, globals_, on_trust):
        if "trust" not in self.answers and not self.queues.get("trust"):
            return super().trust(path, globals_, on_trust)
        if self._ask("trust", path, list(globals_)):
            on_trust()
        return None


def _question(name: str):
    def ask(self, *args):
        return self._ask(name, *args)
    ask.__name__ = name
    ask.__doc__ = f"The scripted answer to ``Prompts.{name}``."
    return ask


for _name in QUESTIONS:
    setattr(FakePrompts, _name, _question(_name))
