"""The HTTP services besides the appservice, each off unless configured: the Prometheus
endpoint (bridge/metrics.py) and the provisioning API (bridge/provisioning/)."""

from __future__ import annotations

from .core.context import BridgeContext
from .metrics import MetricsServer
from .provisioning import ProvisioningAPI


class AdminServices:
    def __init__(self, ctx: BridgeContext) -> None:
        ctx.metrics.watch(ctx)
        config = ctx.config
        self.metrics = MetricsServer(ctx.metrics, config.metrics) if config.metrics.enabled else None
        self.provisioning = (
            ProvisioningAPI(ctx, config.provisioning) if config.provisioning.enabled else None
        )

    async def start(self) -> None:
        if self.metrics is not None:
            await self.metrics.start()
        if self.provisioning is not None:
            await self.provisioning.start()

    async def stop(self) -> None:
        if self.provisioning is not None:
            await self.provisioning.stop()
        if self.metrics is not None:
            await self.metrics.stop()
