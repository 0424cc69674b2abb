"""Model definitions, training and ONNX export. May import torch; the runtime (avatar_rt/) never imports this."""
