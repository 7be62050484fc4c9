"""A user's model, weights and data from files, made into :class:`interp.Subject` objects.

What ``interp dashboard`` and ``interp report`` read with ``--subject FILE.py:function``
(a function returning one Subject or several) or ``--model-file FILE.py:factory
--weights W.safetensors --data D.npz [--names N.json]``. The Python file is the user's
own code and is run as such (it is what they ask for); weights and data are read
without unpickling anything: safetensors, ``np.load(allow_pickle=False)``, or
``torch.load(weights_only=True)``. Every failure is an :class:`~interp.errors.InterpError`
that names the file and what was expected, so the CLI prints one line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import InputError, InterpError, WeightsError
from .subject import Subject, subjects

DATA_KEYS = {"inputs": ("x", "inputs", "X"), "labels": ("y", "labels", "Y"), "truth": ("truth", "masks"),
             "reference": ("x_train", "reference")}
NAME_KEYS = ("name", "task", "modality", "classes", "features", "vocab", "objective", "pad_id", "description")


def _split_spec(spec: str, what: str) -> tuple[Path, str]:
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name:
        raise InputError(f"{what} must be FILE.py:NAME (a Python file and a function in it); got {spec!r}")
    return Path(path), name


def load_callable(spec: str, what: str = "--subject"):
    """The function ``NAME`` of the Python file ``FILE.py`` given as ``FILE.py:NAME``."""
    path, name = _split_spec(spec, what)
    if not path.is_file():
        raise InputError(f"{what}: no such file {str(path)!r}")
    if path.suffix != ".py":
        raise InputError(f"{what}: {str(path)!r} is not a Python file (.py)")
    module_name = "interp_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # the file's imports of its neighbours, also inside its functions later
            sys.path.insert(0, folder)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001  (the user's file: report any failure, in one line)
            raise InputError(f"{what}: running {str(path)!r} failed ({type(exc).__name__}: {exc})") from exc
        sys.modules[module_name] = module
    found = getattr(module, name, None)
    if not callable(found):
        have = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                      and getattr(v, "__module__", None) == module_name)
        raise InputError(f"{what}: {str(path)!r} has no function {name!r}; it defines "
                         f"{', '.join(have) if have else 'none'}")
    return found


def _call(fn, spec: str, what: str):
    try:
        return fn()
    except InterpError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{what} {spec}: calling it failed ({type(exc).__name__}: {exc})") from exc


def subjects_from(spec: str) -> list[Subject]:
    """The subjects a ``FILE.py:function`` returns (one Subject or a list)."""
    return subjects(_call(load_callable(spec, "--subject"), spec, "--subject"))


def model_from(spec: str) -> nn.Module:
    """The module a ``FILE.py:factory`` builds (called with no arguments)."""
    model = _call(load_callable(spec, "--model-file"), spec, "--model-file")
    if not isinstance(model, nn.Module):
        raise InputError(f"--model-file {spec}: the factory returned {type(model).__name__}; expected an nn.Module")
    return model


def read_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Named tensors of a ``.safetensors``, ``.npz`` or ``.pt`` file, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
        if suffix in (".pt", ".pth", ".bin"):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(loaded, nn.Module) or not isinstance(loaded, dict):
                raise InputError(f"{what}: {str(path)!r} holds {type(loaded).__name__}; expected a dict of tensors "
                                 "(a state_dict)")
            nested = [k for k, v in loaded.items() if isinstance(v, dict) and any(
                isinstance(t, torch.Tensor) for t in v.values())]
            if nested and not any(isinstance(v, torch.Tensor) for v in loaded.values()):
                raise InputError(f"{what}: {str(path)!r} is a checkpoint with the tensors under {nested[0]!r}; save "
                                 f"that state_dict by itself (torch.save(ckpt[{nested[0]!r}], ...))")
            return {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    except InterpError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"{what}: {str(path)!r} needs pickle to load (object arrays), which interp refuses; "
                             "save plain numeric arrays (np.savez with numbers only)") from None
        raise InputError(f"{what}: {str(path)!r} cannot be read ({exc})") from None
    except Exception as exc:  # noqa: BLE001  (a damaged file, or one torch refuses to load without pickle)
        why = ("it needs pickle, which interp refuses (torch.load weights_only=True)"
               if "weights_only" in str(exc) or "Unpickl" in str(exc) else f"{type(exc).__name__}: {exc}")
        raise InputError(f"{what}: {str(path)!r} cannot be read ({' '.join(why.split())[:300]})") from None
    raise InputError(f"{what}: {str(path)!r} is not a .safetensors, .npz or .pt file")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """``model`` with the weights of ``path`` loaded strictly; a WeightsError lists the
    missing and unexpected keys and the shapes that differ."""
    tensors = read_tensors(path, "--weights")
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k} {tuple(tensors[k].shape)} (the model has {tuple(own[k].shape)})"
              for k in own if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        def listed(keys):
            return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        problems = ([f"missing keys: {listed(missing)}"] if missing else []) + \
                   ([f"unexpected keys: {listed(unexpected)}"] if unexpected else []) + \
                   ([f"shapes differ: {listed(shapes)}"] if shapes else [])
        raise WeightsError(f"--weights {str(path)!r} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def load_data(path: str | Path) -> dict[str, torch.Tensor]:
    """The arrays of a data file: inputs (``x``), and where present labels (``y``),
    ground-truth masks (``truth``) and reference inputs (``x_train``)."""
    arrays = read_tensors(path, "--data")
    out = {}
    for field, keys in DATA_KEYS.items():
        key = next((k for k in keys if k in arrays), None)
        if key is not None:
            out[field] = arrays[key]
    if "inputs" not in out:
        raise InputError(f"--data {str(path)!r} has no inputs; expected an array named x (and labels y); it has "
                         f"{', '.join(sorted(arrays)) or 'none'}")
    return out


def read_names(path: str | Path | None) -> dict:
    """The names JSON: any of name, task, modality, classes, features, vocab, objective,
    pad_id, description."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--names: no such file {str(path)!r}")
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"--names {str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(names, dict):
        raise InputError(f"--names {str(path)!r} must hold a JSON object; got {type(names).__name__}")
    unknown = sorted(set(names) - set(NAME_KEYS))
    if unknown:
        raise InputError(f"--names {str(path)!r} has unknown fields {', '.join(unknown)}; expected any of "
                         f"{', '.join(NAME_KEYS)}")
    return names


def subject_from_files(model_file: str, weights: str | Path | None, data: str | Path,
                       names: str | Path | None = None, **given) -> Subject:
    """A Subject from a factory file, its weights and a data file, named by a JSON file
    and/or keyword overrides (``classes=[...]``, ``task=...``)."""
    model = model_from(model_file)
    if weights is not None:
        load_weights(model, weights)
    arrays = load_data(data)
    described = {**read_names(names), **{k: v for k, v in given.items() if v is not None}}
    described.setdefault("name", Path(_split_spec(model_file, "--model-file")[0]).stem)
    return Subject(model, arrays["inputs"], arrays.get("labels"), truth=arrays.get("truth"),
                   reference=arrays.get("reference"), **described)


__all__ = ["load_callable", "subjects_from", "model_from", "read_tensors", "load_weights", "load_data", "read_names",
           "subject_from_files", "DATA_KEYS", "NAME_KEYS"]
