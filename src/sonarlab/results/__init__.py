"""What a trained model is scored on (``metrics``), how a variant's splits are summarized
(``summary``, ``stats``), and how results are kept: the tables' formats (``tables``) and
the figure writer (``figures``). No TensorFlow: the engines and the report share it."""
