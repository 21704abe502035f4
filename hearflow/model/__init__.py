"""The HTF model: one factory builds every variant from a :class:`ModelConfig`; encoder trunks,
safetensors checkpoints and importers of the authors' released weights (pretrained loading kept apart)."""

from hearflow.model.htf import FlowAttention, HTFModel, ModelConfig


def create_model(cfg: ModelConfig | None = None, **overrides) -> HTFModel:
    """Build the model described by ``cfg`` (fields may be overridden by keyword).

    Pretrained weights (``pretrained: imagenet``) are loaded here, after the architecture
    is built, so the architecture code never touches files or the network.
    """
    import dataclasses

    cfg = dataclasses.replace(cfg or ModelConfig(), **overrides)
    model = HTFModel(cfg)
    if cfg.pretrained == "imagenet":
        from hearflow.model.pretrained import load_imagenet

        load_imagenet(model)
    return model


__all__ = ["HTFModel", "ModelConfig", "FlowAttention", "create_model"]
