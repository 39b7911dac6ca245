"""The built-in synthetic data sets, one module per task's set, generated offline on first use."""
