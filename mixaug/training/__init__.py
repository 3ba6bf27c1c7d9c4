"""Training: stage 1 / stage 2 training of a checkpoint and its adaptation (`train`), and the supervised task
model that labels new rows (`task`). `TrainConfig` lives in Config. Never imports the API, the Face or
Evaluation."""
