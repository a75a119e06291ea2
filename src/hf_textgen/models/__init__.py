"""The model families, and the one place that registers them with the transformers Auto classes."""

from transformers import AutoConfig

__all__: list[str] = []

# (config class, {Auto class: model class}) per family; a family adds its line when it lands.
_REGISTRY: list[tuple[type, dict[type, type]]] = []


def _register() -> None:
    for config_class, models in _REGISTRY:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            # `save_pretrained` writes `auto_map` and copies the modeling code so the folder loads with
            # `trust_remote_code=True` where hf_textgen is not installed.
            model_class.register_for_auto_class(auto_class.__name__)
        config_class.register_for_auto_class()


_register()
