"""The command line: one-line errors and exit codes (``command``), signals
(``interrupts``) and progress lines (``progress``). Like ``tracking``, it changes no
byte of a DVC output, so no stage lists it in its deps."""
