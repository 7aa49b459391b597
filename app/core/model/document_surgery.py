"""The structural surgery of a Document: renames, removals, insertions and tensor replacement,
each keeping the loaded container (a torch pickle's nested dicts) in step for saving."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from .container_paths import (_insert_into_container, _pop_from_container, _rename_in_container,
                              _set_in_container)
from .tensor_entry import TensorEntry
from .ties import tie_group


class TensorSurgery:
    """Mixed into Document: needs ``tensors``, ``container``, ``module``, ``revision``,
    ``batch()`` and ``_changed()``. Live modules keep their own structure: their tensors can be
    replaced (cast), not renamed or removed."""

    tensors: dict[str, TensorEntry]
    container: Any
    module: torch.nn.Module | None
    revision: int

    def _refuse_module(self, what: str) -> None:
        if self.module is not None:
            raise UserError(f"cannot {what} tensors of a live or TorchScript model; "
                            "save it as a checkpoint and open that to do so")

    def rename_tensors(self, mapping: dict[str, str]) -> None:
        """Rename several tensors at once, each keeping its position (one rebuild).

        Parameters
        ----------
        mapping : dict of str to str
            ``{old name: new name}``; a clash or an unknown name raises UserError, unchanged.
        """
        self._refuse_module("rename")
        for old in mapping:
            self.entry(old)
        final = [mapping.get(n, n) for n in self.tensors]
        if len(set(final)) != len(final):
            dup = sorted({n for n in final if final.count(n) > 1})
            raise UserError(f"renaming would give several tensors the same name: {', '.join(dup[:5])}")
        if self.container is not None:
            _rename_in_container(self.container, [(self.tensors[o], n) for o, n in mapping.items()])
        for old, new in mapping.items():
            self.tensors[old].name = new
        for e in self.tensors.values():
            e.shared_with = [mapping.get(n, n) for n in e.shared_with]
        self.tensors = {e.name: e for e in self.tensors.values()}
        self._changed()

    def rename_tensor(self, old: str, new: str) -> None:
        self.rename_tensors({old: new})

    def remove_tensor(self, name: str, _in_container: bool = True) -> dict:
        """Remove one tensor (and its container slot).

        Parameters
        ----------
        name : str

        Returns
        -------
        dict
            A record that ``insert_tensor`` restores exactly (entry, position, slot, ties).
        """
        self._refuse_module("remove")
        e = self.entry(name)
        record = {"entry": e, "position": list(self.tensors).index(name),
                  "shared_with": list(e.shared_with), "slot": None}
        if self.container is not None and _in_container:
            record["slot"] = _pop_from_container(self.container, e.path)
        del self.tensors[name]
        for other in e.shared_with:
            if other in self.tensors:
                self.tensors[other].shared_with.remove(name)
        self._changed()
        return record

    def insert_tensor(self, record: dict) -> None:
        """Undo ``remove_tensor``: same entry, position, container slot and ties.

        Parameters
        ----------
        record : dict
            What ``remove_tensor`` returned.
        """
        self.insert_tensors([record])

    def insert_tensors(self, records: list[dict]) -> None:
        """Undo several ``remove_tensor`` calls, latest removal first, rebuilding the name
        table once (one insert at a time is quadratic: 480 optimizer tensors took 0.1 s)."""
        names = set(self.tensors)
        for rec in records:
            if rec["entry"].name in names:
                raise UserError(f"a tensor named {rec['entry'].name!r} already exists")
            names.add(rec["entry"].name)
        items = list(self.tensors.items())
        for rec in records:
            e: TensorEntry = rec["entry"]
            if rec["slot"] is not None:
                _insert_into_container(self.container, e.path, rec["slot"], rec["slot"][1])
            items.insert(rec["position"], (e.name, e))
        self.tensors = dict(items)
        for rec in records:
            e = rec["entry"]
            group = [e] + [self.tensors[n] for n in rec["shared_with"] if n in self.tensors]
            if len(group) > 1:
                tie_group(group)
        self._changed()

    def remove_entry(self, key: str) -> dict:
        """Remove a whole top-level key of a checkpoint (e.g. ``optimizer``), tensors included.

        Parameters
        ----------
        key : str

        Returns
        -------
        dict
            The record ``restore_entry`` puts back.
        """
        self._refuse_module("remove")
        if not isinstance(self.container, dict):
            raise UserError(f"{key!r}: only checkpoints whose top level is a dict have entries")
        real = next((k for k in self.container if str(k) == key), None)
        if real is None:
            raise UserError(f"the checkpoint has no top-level entry {key!r}")
        under = [n for n, e in self.tensors.items() if e.path[:1] == (real,)]
        with self.batch():
            removed = [self.remove_tensor(n, _in_container=False) for n in reversed(under)]
            slot = _pop_from_container(self.container, (real,))
            self._changed()
        return {"key": real, "slot": slot, "tensors": removed}

    def restore_entry(self, record: dict) -> None:
        """Undo ``remove_entry``.

        Parameters
        ----------
        record : dict
            What ``remove_entry`` returned.
        """
        key, (index, value) = record["key"], record["slot"]
        _insert_into_container(self.container, (key,), (index, value), value)
        with self.batch():
            self.insert_tensors(list(reversed(record["tensors"])))  # the container holds them
            self._changed()

    def replace_tensor(self, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """Put ``tensor`` (e.g. a cast copy) under ``name`` and all its aliases, so they stay tied.

        Parameters
        ----------
        name : str
        tensor : torch.Tensor

        Returns
        -------
        dict of str to torch.Tensor
            ``{name: old tensor}`` for ``restore_tensors`` (exact originals, per alias).

        Live modules keep their ``Parameter`` objects: ``param.data`` is rebound (an optimizer
        holding the parameter still holds it); buffers are re-set under the same attribute.
        """
        e = self.entry(name)
        group = [e] + [self.tensors[n] for n in e.shared_with]
        old = {g.name: g.tensor() for g in group}
        params = {id(t): t for t in old.values() if isinstance(t, torch.nn.Parameter)}
        if params:
            data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
            old = {g.name: g.tensor().data for g in group}  # before any change: ties share p
            for g in group:
                p = g.tensor()
                if isinstance(p, torch.nn.Parameter):
                    p.data = data
                else:
                    self._put(g, data)
        else:
            for g in group:
                self._put(g, tensor)
        for g in group:
            g.refresh_meta()
        self.revision += 1
        return old

    def restore_tensors(self, old: dict[str, torch.Tensor]) -> None:
        """Undo ``replace_tensor``: each name gets back its own original tensor object.

        Parameters
        ----------
        old : dict of str to torch.Tensor
            What ``replace_tensor`` returned.
        """
        for name, t in old.items():
            e = self.entry(name)
            cur = e.tensor()
            if isinstance(cur, torch.nn.Parameter) and not isinstance(t, torch.nn.Parameter):
                cur.data = t
                e.refresh_meta()
            else:
                self._put(e, t)
        self.revision += 1

    def _set_placeholder(self, e: TensorEntry, placeholder: torch.Tensor) -> None:
        if self.container is not None and e.path:
            try:
                _set_in_container(self.container, e.path, placeholder)
            except UserError:
                pass

    def _put(self, e: TensorEntry, tensor: torch.Tensor) -> None:
        if e.owner is not None and e.attr is not None:
            setattr(e.owner, e.attr, tensor)
        if self.container is not None and e.path:
            _set_in_container(self.container, e.path, tensor)
        e.set_tensor(tensor)
