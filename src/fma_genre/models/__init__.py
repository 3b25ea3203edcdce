"""Model stage (workflow/rules/models.smk): the pretrained weights; the classifier built on them,
LoRA adapters, and the trained model's folder."""
