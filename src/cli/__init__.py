"""The `allim` console script."""
