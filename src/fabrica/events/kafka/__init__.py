"""The Kafka transport: `KafkaBus` (connection and publish, `_bus`), the topic's setup and
lookups (`_topic`), events as records (`_records`), the readers that feed each
subscription (`_reader`) and the subscriptions themselves (`_subscriptions`).

It needs aiokafka (``pip install pyfabrica[kafka]``): `fabrica.events` imports this
package only when `KafkaBus` is first asked for.
"""

try:
    import aiokafka  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the Kafka event bus needs aiokafka: pip install 'pyfabrica[kafka]'"
                      ) from exc

from ._bus import KafkaBus
from ._records import CONTENT_TYPE

__all__ = ["CONTENT_TYPE", "KafkaBus"]
