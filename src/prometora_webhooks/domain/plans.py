"""Plans: webhooks are a Business plan feature."""

from __future__ import annotations

from .errors import PlanUpgradeRequired

BUSINESS = "business"
UPGRADE_MESSAGE = (
    "Custom webhooks are available on the Business plan ($199/month). "
    "Upgrade to integrate your marketplace with external systems."
)


def has_webhooks(plan: str) -> bool:
    return plan == BUSINESS


def require_webhooks(plan: str) -> None:
    if not has_webhooks(plan):
        raise PlanUpgradeRequired(UPGRADE_MESSAGE)
