"""Undoable changes to a document: each Edit applies in place under torch.no_grad(), reverts exactly, and writes itself as a recipe step."""
