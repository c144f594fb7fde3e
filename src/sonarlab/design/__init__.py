"""The study's design, read from ``params.yaml``: its variants (``variants``) and its grid
studies (``grids``), each a typed, frozen config."""
