"""sharpeyes: the command-line entry point (wiring only; the work lives in the other packages)."""
