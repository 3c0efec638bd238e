"""One LightningDataModule per task: simulator, real-data loader and splits."""
