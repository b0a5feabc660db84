"""Training: fine-tuning one (model, task) with LoRA, its batches, epoch metrics and resumable checkpoints."""
