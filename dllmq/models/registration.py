"""Register the native LLaDA and Dream classes with transformers' Auto classes, so an official checkpoint
(model_type "llada" / "Dream", an `auto_map` naming remote code) loads with `AutoModel.from_pretrained`
and never asks for `trust_remote_code`.

`import dllmq` calls `install_auto_registration()`, which costs nothing at that moment: transformers keeps
its Auto classes in modules it imports lazily, and registration needs those modules. So the registration
waits for them:

  * once `transformers.models.auto.configuration_auto` has loaded, the two config classes are registered
    (they import only `PretrainedConfig`, which that module has already loaded);
  * once `transformers.models.auto.modeling_auto` has loaded (AutoModel, AutoModelForCausalLM,
    AutoModelForMaskedLM; `AutoTokenizer` loads it too), each model class is registered as a deferred
    stand-in that imports the real class (and the modeling stack) at its first use and then replaces
    itself in the mappings.

If those modules are already loaded, registration happens at once. transformers 5.x offers no registration
by module path for classes outside its own package (its lazy mappings only look inside
`transformers.models`), hence the import hook. `register_auto_classes()` is the eager variant for code that
has the real classes loaded anyway.
"""
from __future__ import annotations

import importlib
import sys
import warnings

CONFIG_AUTO = "transformers.models.auto.configuration_auto"
MODEL_AUTO = "transformers.models.auto.modeling_auto"
AUTO_MODEL_CLASSES = ("AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM")
# official model_type -> (config class name, module of the model class, model class name)
NATIVE = {
    "llada": ("LLaDAConfig", "dllmq.models.llada", "LLaDAModelLM"),
    "Dream": ("DreamConfig", "dllmq.models.dream", "DreamModel"),
}


def _config_classes() -> dict:
    from . import configs

    return {model_type: getattr(configs, names[0]) for model_type, names in NATIVE.items()}


def _register_configs(configuration_auto) -> None:
    for model_type, config_class in _config_classes().items():
        configuration_auto.AutoConfig.register(model_type, config_class, exist_ok=True)


class DeferredModelClass:
    """Stands in for a native model class inside the Auto mappings until first used: then it imports the
    real class, registers it in its own place and hands the call (`from_pretrained`, `_from_config`, ...) on."""

    def __init__(self, config_class, module: str, name: str):
        self.config_class = config_class
        self.__module__ = module  # not "transformers.*": transformers treats it as local code
        self.__name__ = self.__qualname__ = name

    def resolve(self) -> type:
        cls = getattr(importlib.import_module(self.__module__), self.__name__)
        modeling_auto = sys.modules.get(MODEL_AUTO) or importlib.import_module(MODEL_AUTO)
        for auto in AUTO_MODEL_CLASSES:
            getattr(modeling_auto, auto).register(self.config_class, cls, exist_ok=True)
        return cls

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # probes such as __wrapped__ must not import the modeling stack
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<deferred {self.__module__}.{self.__name__}>"


def _register_models(modeling_auto) -> None:
    configs = _config_classes()
    for model_type, (_, module, name) in NATIVE.items():
        config_class = configs[model_type]
        for auto in AUTO_MODEL_CLASSES:
            auto_class = getattr(modeling_auto, auto)
            if isinstance(auto_class._model_mapping.get(config_class, None), type):
                continue  # the real class is registered already (register_auto_classes ran)
            auto_class.register(config_class, DeferredModelClass(config_class, module, name), exist_ok=True)


def register_auto_classes() -> None:
    """Register the real config and model classes now (imports the modeling code and transformers)."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    for model_type, config_class in _config_classes().items():
        AutoConfig.register(model_type, config_class, exist_ok=True)
    for _, module, name in NATIVE.values():
        cls = getattr(importlib.import_module(module), name)
        for auto in AUTO_MODEL_CLASSES:
            getattr(modeling_auto, auto).register(cls.config_class, cls, exist_ok=True)


_HOOKS = {CONFIG_AUTO: _register_configs, MODEL_AUTO: _register_models}


def _run(hook, module) -> None:
    try:
        hook(module)
    except Exception as error:  # never break an import of transformers; say what failed
        warnings.warn(f"dllmq could not register LLaDA/Dream with transformers' Auto classes ({error!r}); "
                      "use dllmq.load_model or dllmq.models.register_auto_classes()")


class _CallbackLoader:
    """Wraps a module's loader and runs a hook right after the module has executed."""

    def __init__(self, loader, hook):
        self._loader, self._hook = loader, hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _run(self._hook, module)

    def __getattr__(self, attr: str):  # get_source, get_data, ... of the wrapped loader
        return getattr(self._loader, attr)


class _AfterImportFinder:
    """A sys.meta_path finder: finds the watched transformers modules with the other finders and wraps their
    loaders. (Plain classes: importlib.abc would cost more import time than all of dllmq.)"""

    def __init__(self):
        self.pending = dict(_HOOKS)

    def find_spec(self, fullname, path, target=None):
        hook = self.pending.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.pending[fullname]
        spec.loader = _CallbackLoader(spec.loader, hook)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        return spec


def install_auto_registration() -> None:
    """Register with the Auto classes as soon as transformers loads them (at once if it has). Idempotent."""
    if any(isinstance(f, _AfterImportFinder) for f in sys.meta_path):
        return
    finder = _AfterImportFinder()
    for name in (CONFIG_AUTO, MODEL_AUTO):  # configuration_auto first: the model mapping needs its classes
        if name in sys.modules:
            del finder.pending[name]
            _run(_HOOKS[name], sys.modules[name])
    if finder.pending:
        sys.meta_path.insert(0, finder)
