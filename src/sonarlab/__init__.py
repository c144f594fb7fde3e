"""sonarlab: a reproducible study of dropout regularization on the UCI Sonar data."""

__version__ = "0.1.0"
