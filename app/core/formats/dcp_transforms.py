"""DCP entries stored through stream transforms (``FileSystemWriter(_extensions=[ZStandard()])``).

Each stored item's ``transform_descriptors`` name the transforms its bytes went through
(``"stream.zstd/1"``). Only the transforms torch itself ships (``KNOWN``: an allowlist by registry
name, never whatever a process registered in torch's registry) are decoded, with torch's own
classes, as ``FileSystemReader`` does: the descriptors in the stored order, each wrapping the
stream. Decoding is bounded: a record may not decode to more than its tensor needs (a small file
cannot expand into all memory). Saving back keeps the transforms that were read (``writer_extensions``).
"""
from __future__ import annotations

import io

from ..errors import ContentError


#: registry name -> torch's extension class; the only transforms read (filled on first use:
#: importing torch.distributed.checkpoint costs time at start)
KNOWN: dict[str, type] = {}
_shipped_added = False


def known() -> dict[str, type]:
    global _shipped_added
    if not _shipped_added:
        from torch.distributed.checkpoint import _extension
        for cls in (_extension.ZStandard,):  # what torch ships
            KNOWN.setdefault(cls.registry_name(), cls)
        _shipped_added = True
    return KNOWN
#: bytes a decoded record may hold beyond its tensor's elements (torch.save's zip framing)
RECORD_SLACK = 1 << 20


def _name(descriptor) -> str:
    return descriptor.partition("/")[0] if isinstance(descriptor, str) else repr(descriptor)


def extensions(what: str, descriptors) -> list:
    """torch's extension objects for ``descriptors`` (in the stored order); a ContentError in
    one line naming the transform when one is unknown, of another version, or unavailable here
    (zstd needs the ``zstandard`` or ``pyzstd`` package)."""
    if not isinstance(descriptors, (list, tuple)):
        raise ContentError(f"{what} names its transforms in a malformed way")
    out = []
    for d in descriptors:
        cls = known().get(_name(d))
        if not isinstance(d, str) or cls is None:
            raise ContentError(f"{what} is stored through the transform {d!r}, which paramedit "
                               f"does not read (it reads {', '.join(sorted(known())) or 'none'})")
        try:
            out.append(cls.from_descriptor(d.partition("/")[2]))
        except Exception as exc:  # torch's own words: unknown version, module not installed
            text = str(exc).strip().splitlines()
            raise ContentError(f"{what} is stored through {d!r}, which cannot be read here "
                               f"({text[0][:200] if text else type(exc).__name__})") from None
    return out


def decode(data: bytes, exts: list, limit: int, what: str) -> bytes:
    """``data`` through the transforms, at most ``limit`` bytes of it (more is refused)."""
    stream = io.BytesIO(data)
    for ex in exts:
        stream = ex.transform_from(stream)
    out, total = [], 0
    try:
        while total <= limit:  # a raw stream's read may return less than asked before its end
            piece = stream.read(min(1 << 22, limit + 1 - total))
            if not piece:
                break
            out.append(piece)
            total += len(piece)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ContentError(f"{what} cannot be decoded "
                           f"({text[0][:200] if text else type(exc).__name__})") from None
    if total > limit:
        raise ContentError(f"{what} decodes to more than the {limit} bytes it may hold")
    return b"".join(out)


def writer_extensions(descriptors) -> list:
    """The extensions to hand ``FileSystemWriter`` so that it writes ``descriptors`` again (it
    lists them in the reverse order of its ``_extensions``)."""
    return list(reversed(extensions("the checkpoint", descriptors)))
