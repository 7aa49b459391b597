"""What is open: the document, its named tensors (dtype, layout, ties, file backing), the module tree and names inside nested containers."""
