"""Training (rank 3): the one trainer, the image classifiers' training, the hardware loss,
checkpoints.
"""
