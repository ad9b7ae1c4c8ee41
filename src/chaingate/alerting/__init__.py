"""Alert sinks: the webhook pusher (SPEC section 8). Alerts themselves are stored by
``store/alerts.py`` in the transaction of the event that raised them."""

from chaingate.alerting.pusher import AlertPusher
from chaingate.alerting.webhook import ALERT_ID_HEADER, WebhookSink

__all__ = ["ALERT_ID_HEADER", "AlertPusher", "WebhookSink"]
