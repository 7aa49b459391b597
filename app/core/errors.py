"""Exceptions whose message is meant for the user, as is."""


class UserError(Exception):
    """An error caused by the user's input; its message says what is wrong and what to do."""


class CheckpointError(UserError):
    """A path that cannot be opened as a checkpoint (missing, corrupt, unsupported)."""


class ContentError(CheckpointError):
    """What a file holds cannot be shown (nested too deeply, too many paths); raised without the
    path, which ``load_document`` adds."""


class UnsafePickleError(CheckpointError):
    """A pickle that would import globals outside torch's weights-only allowlist."""

    def __init__(self, path: str, globals_: list[str]):
        self.path = path
        self.globals = list(globals_)
        names = ", ".join("".join(c if c.isprintable() else ascii(c)[1:-1] for c in g)
                          for g in self.globals[:20]) or "unknown globals"
        if len(self.globals) > 20:
            names += f", and {len(self.globals) - 20} more"
        super().__init__(
            f"{path} is a pickle that would import and run code ({names}); it was not loaded. "
            "Open it only if you trust its source (--trust on the command line)."
        )


class Cancelled(Exception):
    """Raised inside long work when its cancel callback says stop."""


class UntrustedCodeError(UnsafePickleError):
    """A file that can only be read by running code it carries (a TorchScript archive the lazy
    reader does not understand). Handled like an unsafe pickle: loaded only with trust."""

    def __init__(self, path: str, what: str, message: str):
        self.path = path
        self.globals = [what]
        CheckpointError.__init__(self, message)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): errors from
    torch, pickle or the regex engine can span many lines, and paramedit reports one."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def detached(exc: BaseException) -> BaseException:
    """``exc`` without its traceback, nor those of its causes and contexts, for an error kept as
    a value (returned, queued to another thread). A traceback holds the frames it ran through,
    so their locals (the document, its tensors), and the frames of the callers that keep the
    error in a local: a reference cycle that freed an old document only at Python's next full
    garbage collection."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__cause__, e.__context__]
    return exc
