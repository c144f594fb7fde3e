"""Grid studies run: trials planned into shards of fused programs (``shards``), run in
this process or on a Dask cluster (``cluster``), and drawn (``figures``)."""
