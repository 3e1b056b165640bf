"""Networks: the per-pixel U-Net encoder, the shallow decoder, and the autoencoder of both."""

from nbutils.models.autoencoder import AutoEncoder
from nbutils.models.decoders import ShallowDecoder
from nbutils.models.unet import UNetEncoder

__all__ = ["AutoEncoder", "UNetEncoder", "ShallowDecoder"]
