"""Networks: the per-pixel U-Net encoder, the shallow decoder, the autoencoder of both, and the
full-resolution residual CNN."""

from nbutils.models.autoencoder import AutoEncoder
from nbutils.models.decoders import ShallowDecoder
from nbutils.models.fullres import FullResCNN
from nbutils.models.unet import UNetEncoder

__all__ = ["AutoEncoder", "UNetEncoder", "ShallowDecoder", "FullResCNN"]
