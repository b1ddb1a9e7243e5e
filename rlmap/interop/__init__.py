"""The border with other tools: PyTorch models in (torch.fx), Timeloop and AccelForge files out."""
