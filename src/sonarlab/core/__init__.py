"""The pieces every stage uses: errors, files (atomic writes, bounded reads, table
formats), paths relative to the project root, and the ``params.yaml`` loader with the
sections every stage shares (``fetch``, ``cv``, ``mlflow``, ``report``)."""
