"""PixColor networks: conditioning (ResNet), gated conditional PixelCNN, refinement."""
