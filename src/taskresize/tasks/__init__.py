"""Tasks: a resizer in front of a backbone, one LightningModule per task."""
