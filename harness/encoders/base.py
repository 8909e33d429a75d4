"""What every encoder is: a backbone that turns crops into patch features, plus a connector
that turns one image's patch features into the LLM-facing token sequence."""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from harness.connectors import Connector, build_connector, connector_class
from harness.encoders.weights import Format, load_encoder_weights, resolve_encoder_weights
from harness.runtime import Runtime
from harness.types import EncoderOutput, Layout, Views

ENCODER_SIZES = ("full", "tiny")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
POOLS = ("mean_patch", "global_cls")


class EncoderModel(nn.Module):
    """Backbone + connector in one module, so that a state dict has `backbone.*` and
    `connector.*` keys (what the weight key maps target)."""

    def __init__(self, backbone: nn.Module, connector: Connector) -> None:
        super().__init__()
        self.backbone = backbone
        self.connector = connector


class Encoder(ABC):
    """Base class for encoders.

    Subclasses set the class constants and implement `build_backbone(size, attn) ->
    (module, C)` and `run_backbone(pixels) -> [N, 1+P, C]` (CLS first). Token counts are
    class-level (`count_tokens`, `check_layout`) so that `harness.tokens` needs no model.
    """

    name: ClassVar[str]
    tile_size: ClassVar[int]
    patch_size: ClassVar[int]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]
    native_connector: ClassVar[str] = "flat"
    # The strategy `preprocess=native` resolves to, with its parameters where they differ from
    # the strategy's defaults.
    native_strategy: ClassVar[str]
    native_strategy_params: ClassVar[dict[str, Any]] = {}
    hf_id: ClassVar[str]
    # Checkpoint formats this encoder reads (key map, connector its tensors fill), tried in order.
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ()
    lm_dim: ClassVar[dict[str, int]] = {"full": 4096, "tiny": 48}  # connector output width by size
    # True for encoders that take views of any size (Layout.view_size), e.g. Qwen2.5-VL's ViT.
    variable_views: ClassVar[bool] = False
    # The connectors this encoder can take (None: any connector whose layout needs are met).
    connector_choices: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self, *, size: str, weights: str, runtime: Runtime, batch_views: int = 16, connector: str | None = None,
        connector_params: dict[str, Any] | None = None, out_dim: int | None = None, attn: str = "sdpa",
        pool: str = "mean_patch", feature_layer: int = -2, seed: int = 0,
    ) -> None:
        self.check_options(size=size, weights=weights, batch_views=batch_views, attn=attn, pool=pool,
                           connector=connector)
        self.size, self.weights, self.runtime = size, weights, runtime
        self.batch_views = int(batch_views)
        self.connector_name = connector or self.native_connector
        self.attn, self.pool_mode, self.feature_layer = attn, pool, int(feature_layer)
        folder = None
        if weights != "random":
            folder = resolve_encoder_weights(type(self), weights)
        self.weights_source = str(folder) if folder else "random"
        torch.manual_seed(seed)
        backbone, feature_dim = self.build_backbone(size, attn)
        conn = build_connector(
            self.connector_name, in_dim=feature_dim, out_dim=int(out_dim or self.lm_dim[size]),
            grid_side=self.grid_side(), **(connector_params or {}),
        )
        self.model = EncoderModel(backbone, conn).eval()
        if folder is not None:
            self.after_load(load_encoder_weights(self, folder))
        self.model.to(runtime.device, runtime.dtype)

    # --- to implement -------------------------------------------------------------------
    @abstractmethod
    def build_backbone(self, size: str, attn: str) -> tuple[nn.Module, int]:
        """The backbone module (random init) and its feature width C."""

    @abstractmethod
    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """Features `[N, 1+P, C]` (CLS first) of `self.feature_layer` for `N` crops."""

    def after_load(self, absent: list[str]) -> None:
        """Called with the model keys a checkpoint lacked where its format allows it (none by default)."""
        return None

    @classmethod
    def check_options(
        cls, *, size: str = "full", weights: str = "random", batch_views: int = 16, attn: str = "sdpa",
        pool: str = "mean_patch", connector: str | None = None, **_: Any,
    ) -> None:
        """Fail on a bad option before any model is built; messages name the valid choices."""
        if size not in ENCODER_SIZES:
            raise ValueError(f"encoder size must be one of {', '.join(ENCODER_SIZES)}; got {size!r}")
        if int(batch_views) <= 0:
            raise ValueError(f"batch_views must be positive, got {batch_views}")
        if attn not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn must be one of {', '.join(ATTN_IMPLEMENTATIONS)}; got {attn!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        cls.connector_for(connector)
        if weights != "random" and not cls.checkpoint_formats:
            raise ValueError(f"encoder {cls.name!r} reads no checkpoint format; use weights=random")
        if size == "tiny" and weights == "pretrained":
            raise ValueError(
                "encoder.size=tiny has no pretrained weights; use weights=random or a tiny checkpoint folder"
            )

    @classmethod
    def connector_for(cls, connector: str | None) -> type[Connector]:
        """The connector class (native when None), refused when this encoder cannot take it."""
        conn = connector_class(connector or cls.native_connector)
        if cls.connector_choices is not None and conn.name not in cls.connector_choices:
            raise ValueError(
                f"encoder {cls.name!r} takes connector {', '.join(cls.connector_choices)}; got {conn.name!r}"
            )
        if conn.owner is not None and conn.owner != cls.name:
            raise ValueError(f"connector {conn.name!r} runs inside encoder {conn.owner!r}; {cls.name!r} cannot take it")
        return conn

    # --- token counts without a model ---------------------------------------------------
    @classmethod
    def grid_side(cls) -> int:
        return cls.tile_size // cls.patch_size

    @classmethod
    def check_tile_size(cls, tile_size: int, strategy: str = "the strategy") -> None:
        """Raise ValueError when this encoder cannot take square tiles of `tile_size` px."""
        if tile_size != cls.tile_size:
            raise ValueError(
                f"strategy {strategy!r} makes {tile_size}px tiles but encoder {cls.name!r} takes "
                f"{cls.tile_size}px; leave preprocess.tile_size null"
            )

    @classmethod
    def check_layout(cls, layout: Layout, connector: str | None = None) -> None:
        """Raise ValueError when this encoder (with this connector) cannot take `layout`."""
        if layout.view_size is not None and not cls.variable_views:
            raise ValueError(
                f"encoder {cls.name!r} takes {cls.tile_size}px square crops; strategy {layout.strategy!r} makes "
                f"views of variable size (encoders that take them: qwen2_5_vl_vit)"
            )
        if layout.view_size is None:
            cls.check_tile_size(layout.tile_size, layout.strategy)
        cls.connector_for(connector).check(layout)

    @classmethod
    def count_tokens(cls, layout: Layout, connector: str | None = None) -> int:
        """Visual tokens the forward pass will produce for `layout`."""
        return cls.connector_for(connector).num_tokens(layout, cls.grid_side())

    def num_tokens(self, layout: Layout) -> int:
        return self.count_tokens(layout, self.connector_name)

    # --- shared -------------------------------------------------------------------------
    @property
    def connector(self) -> Connector:
        return self.model.connector  # type: ignore[return-value]

    @classmethod
    def options(cls, **given: Any) -> dict[str, Any]:
        """Every option of this encoder with the class defaults filled in and the connector
        resolved, so that configs that build the same encoder describe it the same way."""
        skip = {"runtime", "connector_params"}
        params = inspect.signature(cls).parameters.values()
        out = {p.name: p.default for p in params if p.name not in skip and p.default is not inspect.Parameter.empty}
        out.update(given)
        out["connector"] = out.get("connector") or cls.native_connector
        return out

    @classmethod
    def describe(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Record columns of this encoder with these options (what a failed job can still say)."""
        return {
            "encoder": cls.name,
            "encoder_size": options.get("size"),
            "weights": options.get("weights"),
            "connector": options.get("connector") or cls.native_connector,
            "tile_size": cls.tile_size,
            "patch_size": cls.patch_size,
            "attn": options.get("attn"),
            "pool": options.get("pool"),
        }

    def identity(self) -> dict[str, Any]:
        """Record columns of this running encoder, including where its weights came from."""
        options = {"size": self.size, "weights": self.weights, "attn": self.attn, "pool": self.pool_mode,
                   "connector": self.connector_name}
        return {**self.describe(options), "weights_source": self.weights_source}

    def connect(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """One image's LLM-facing tokens `[T, D]` from its crops' patch features."""
        return self.connector(features, layout)

    def pool(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Pooled embedding for quality metrics from `[V, 1+P, C]` (CLS first).

        `mean_patch`: mean of the patch features over the content views (padding crops
        excluded). `global_cls`: the CLS vector of the global view (first or last as the
        layout says); a layout without a global view uses the mean CLS of its content views
        (the single view's CLS when there is one).
        """
        if self.pool_mode == "mean_patch":
            return features[: layout.n_views, 1:].float().mean(dim=(0, 1))
        if layout.has_global:
            index = 0 if layout.global_position == "first" else layout.n_views - 1
            return features[index, 0].float()
        return features[: layout.n_views, 0].float().mean(dim=0)

    @torch.inference_mode()
    def encode(self, batch: list[Views]) -> tuple[list[EncoderOutput], dict[str, float]]:
        """Encode the crops of several images, at most `batch_views` crops per backbone call.

        Returns one EncoderOutput per image and the seconds spent per stage for the whole
        batch: `h2d` (host to device copy), `backbone`, `connector`. Padding crops run
        through the backbone (as in the reference implementations) but carry no tokens.
        """
        rt = self.runtime
        counts = [v.pixel_values.shape[0] for v in batch]
        pixels = torch.cat([v.pixel_values for v in batch])
        t0 = time.perf_counter()
        pixels = pixels.to(rt.device, dtype=rt.dtype, non_blocking=True)
        rt.synchronize()
        t1 = time.perf_counter()
        # ceil(n / batch_views) calls of near-equal size (34 crops at 32 -> 17 + 17, not 32 + 2)
        n_calls = -(-pixels.shape[0] // self.batch_views)
        feats = torch.cat([self.run_backbone(chunk) for chunk in pixels.tensor_split(n_calls)])
        rt.synchronize()
        t2 = time.perf_counter()
        outputs = []
        for views, feat in zip(batch, feats.split(counts), strict=True):
            tokens = self.connect(feat[:, 1:], views.layout)
            outputs.append(EncoderOutput(tokens=tokens.float().cpu(), pooled=self.pool(feat, views.layout).cpu()))
        rt.synchronize()
        t3 = time.perf_counter()
        return outputs, {"h2d": t1 - t0, "backbone": t2 - t1, "connector": t3 - t2}
