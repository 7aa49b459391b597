"""The unpickler every restricted reader builds on: no opcode allocates from a count in the file.

It is Python's pure-Python unpickler (``pickle._Unpickler``), not the C one (``pickle.Unpickler``):
the C unpickler grows its memo array to twice the index a PUT / BINPUT / LONG_BINPUT names and
fills it, so an 11-byte pickle naming index 2**29 makes it touch 8 GB. The pure-Python memo is a
dict. Its one opcode that allocates what the file states is BYTEARRAY8 (a zero-filled
``bytearray`` of the stated length, before any byte is read); here the bytes are read first, so a
length past the end of the pickle costs no more than the pickle holds. Every other length
(LONG4, BINBYTES8, BINUNICODE8, FRAME) is a ``read`` of the input, which stops at its end (from
a file, ``read`` reserves the stated size without touching it; beyond memory, a MemoryError).
"""
from __future__ import annotations

import pickle
import struct

_CHUNK = 1 << 24  # read in pieces: a file's read(n) reserves n bytes first


class BoundedUnpickler(pickle._Unpickler):
    dispatch = dict(pickle._Unpickler.dispatch)

    def load_bytearray8(self):
        n, = struct.unpack("<Q", self.read(8))
        out = bytearray()
        while len(out) < n:
            chunk = self.read(min(n - len(out), _CHUNK))
            if not chunk:
                raise pickle.UnpicklingError(f"BYTEARRAY8 of {n} bytes runs past the end of the "
                                             "pickle")
            out += chunk
        self.append(out)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
