"""Reference implementation of the flashrt vstream models in PyTorch.

Written from the published model definitions (Hugging Face CLIPVisionModel,
LlamaForCausalLM, LLaVA's mlp2x_gelu projector, Flash-VStream's spatial
pooling and visual-token splicing), with no dependency beyond torch and
numpy, so the C runtime has an independent oracle. Every function works in
the dtype of its inputs: the goldens are computed in float64 from the stored
weights and saved as float32.
"""
