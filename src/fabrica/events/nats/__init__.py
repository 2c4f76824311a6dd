"""The NATS JetStream transport: `NatsBus` (connection and publish, `_bus`), the stream's
setting, setup and lookup (`JetStream`, `_jetstream`), the readers that feed each
subscription from it (`_reader`) and the subscriptions themselves (`_subscriptions`)."""

from ._bus import NatsBus
from ._jetstream import JetStream

__all__ = ["JetStream", "NatsBus"]
