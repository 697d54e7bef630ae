"""The tests call the bot's endpoints for other systems with the stand-in's client and payloads (standin/hooks.py,
also used by `sitrep demo`)."""

from standin.hooks import API_TOKEN, WEBHOOK_TOKEN, Answer, HookClient, alert, notification

__all__ = ["API_TOKEN", "WEBHOOK_TOKEN", "Answer", "HookClient", "alert", "notification"]
