"""Models: backbone factory (timm + torchvision), architectures and their registry.

`create_model(arch, backbone, *, pretrained="default"|"none"|PATH, flag=False, **arch_kwargs)`;
`model(images, modality) -> {"logit": [B], ...}`; `model.data_config` for preprocessing.
"""

from unifiedgender.models.compat import load_published_checkpoint
from unifiedgender.models.freezing import apply_freezing, freeze_norm_statistics
from unifiedgender.models.registry import create_model, get_arch, list_archs

__all__ = ["apply_freezing", "create_model", "freeze_norm_statistics", "get_arch", "list_archs", "load_published_checkpoint"]
