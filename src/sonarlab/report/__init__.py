"""The report: every variant compared with the baseline (``comparison``), as a page
(``page``) with its figures (``figures``)."""
