"""Networks: the per-pixel U-Net encoder, the shallow decoder, the autoencoder of both, the
full-resolution residual CNN and the full-resolution CUTS pixel encoder."""

from nbutils.models.autoencoder import AutoEncoder
from nbutils.models.decoders import ShallowDecoder
from nbutils.models.fullres import FullResCNN, PixelEncoder
from nbutils.models.unet import UNetEncoder

__all__ = ["AutoEncoder", "UNetEncoder", "ShallowDecoder", "FullResCNN", "PixelEncoder"]
