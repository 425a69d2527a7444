"""Models: backbone factory (timm + torchvision), architectures and their registry.

`create_model(arch, backbone, *, pretrained="default"|"none"|PATH, flag=False, image_size=None, **arch_kwargs)`;
`model(images, modality) -> {"logit": [B], ...}`; `model.data_config` for preprocessing; `model.modalities`
for the modalities it accepts. Importing this package imports every architecture module below, which registers
itself (`unifiedgender.models.registry`); a new architecture is one module plus one line here.
"""

from unifiedgender.models import classifier, mag, multitask, resnet50_head, ridge_classifier, simple_cnn, umcc  # noqa: F401  (register)
from unifiedgender.models.compat import load_published_checkpoint
from unifiedgender.models.factory import create_model
from unifiedgender.models.freezing import apply_freezing, freeze_norm_statistics
from unifiedgender.models.registry import get_arch, list_archs

__all__ = ["apply_freezing", "create_model", "freeze_norm_statistics", "get_arch", "list_archs", "load_published_checkpoint"]
