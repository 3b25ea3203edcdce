"""Where training and scoring run: the device, and one process per GPU (torchrun's launcher, DDP)."""
