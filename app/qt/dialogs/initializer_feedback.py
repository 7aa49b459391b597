"""The initializer dialog's feedback: what the chosen function, scope and filters would change
(and skip) shown as the choices change, the gain's value, and accepting only a valid choice.
``InitializerFeedback`` is mixed into ``initializer_dialog.InitializerDialog``."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from ...core.edits import initializers as inits
from ...core.errors import UserError


class InitializerFeedback:
    """The feedback part of ``InitializerDialog`` (its labels, lists and ``InitTargets``)."""

    def _refresh(self) -> bool:
        scope = self._scope()
        reset = self.reset_check.isChecked()
        self.seed_spin.setEnabled(self.seed_check.isChecked())
        takes = inits.function(self.function_name()).takes_generator
        self.seed_check.setEnabled(takes or reset)
        self.seed_check.setToolTip("" if takes else f"{self.function_name()} draws no random numbers")
        filt = scope != "tensor" and self._targets.module_filter_available()
        self.module_type_filter.setEnabled(filt)
        found = self._targets.module_types_under(self._root, scope == "subtree") \
            if filt else []
        self.module_types_label.setText(f"found: {', '.join(found)}" if found else
                                        "" if scope == "tensor" else "no module classes known")
        self.module_type_filter.setPlaceholderText("all types, or e.g. Linear, Conv2d")
        self.which_combo.setEnabled(scope != "tensor")
        bias_ok = scope != "tensor" and self.which_combo.currentData() == "weights" and not reset
        self.bias_function_combo.setEnabled(bias_ok)
        self.bias_value.setEnabled(bias_ok and self.bias_function_combo.currentText() == "constant_")
        self.function_combo.setEnabled(not reset)
        if self._args_box is not None:
            self._args_box.setEnabled(not reset)
        self.skipped_list.clear()
        self._show_skipped(False)
        self.targets_label.setText("")
        try:
            self._update_gain_label()
            if reset and self._targets.live:
                mods = self._reset_modules()
                self.targets_label.setText(f"reset_parameters() on {len(mods)} module"
                                           f"{'s' if len(mods) != 1 else ''}: {_head(mods)}")
            else:
                ok, skipped, bias, _ = self._plan()
                self._show(ok, skipped, bias)
                if not ok and not bias:
                    raise UserError(f"{self.function_name()} cannot take any of the selected "
                                    "tensors")
            self.error_label.setText("")
            return True
        except UserError as exc:
            message = str(exc)
        except Exception as exc:  # never let a surprise crash the dialog
            message = f"{type(exc).__name__}: {exc}"
        self.error_label.setText(message)
        return False

    def _show(self, ok: list[str], skipped: list[tuple[str, str]], bias: list[str]) -> None:
        text = f"{len(ok)} tensor{'s' if len(ok) != 1 else ''} will change"
        text += f": {_head(ok)}" if ok else ""
        if bias:
            text += f"; then {len(bias)} bias{'es' if len(bias) != 1 else ''} with " \
                    f"{self._bias_function()}"
        aliases = self._targets.tied_names(ok + bias)
        if aliases:
            text += f" ({aliases} tied name{'s' if aliases != 1 else ''} change with them)"
        if self._scope() != "tensor" and self.which_combo.currentData() == "weights" \
                and not self._module_types():
            kept = self._targets.norm_weights_left_out(self._root, self._scope() == "subtree")
            if kept:
                text += (f". Left as they are: {len(kept)} normalisation weight"
                         f"{'s' if len(kept) != 1 else ''} ({_head(kept)}); name the type "
                         "(e.g. LayerNorm) under Module types to include them")
        self.targets_label.setText(text)
        for name, reason in skipped:
            item = QListWidgetItem(reason)
            item.setData(Qt.UserRole, name)
            self.skipped_list.addItem(item)
        self._show_skipped(bool(skipped))

    def _show_skipped(self, visible: bool) -> None:
        """The list of tensors the function cannot take, only when there are some."""
        self.skipped_label.setVisible(visible)
        self.skipped_list.setVisible(visible)

    def _update_gain_label(self) -> None:
        if "gain" not in self.arg_widgets:
            return
        nl = self.gain_nonlinearity.currentData()
        self.arg_widgets["gain"].setEnabled(nl is None)
        self.gain_param.setEnabled(nl in ("leaky_relu",))
        if nl is not None:
            self.gain_value_label.setText(f"= {inits.resolve_gain(self.args()['gain']):.4g}")
        else:
            self.gain_value_label.setText("")

    def _accept_if_valid(self) -> None:
        if not self._refresh():
            return
        try:
            self.make_edits()
        except UserError as exc:
            self.error_label.setText(str(exc))
            return
        except Exception as exc:
            self.error_label.setText(f"{type(exc).__name__}: {exc}")
            return
        self.accept()



def _head(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" … (+{len(names) - n})" if len(names) > n else "")
