"""All tables; importing this module registers them on ``Base.metadata``."""

from app.models.adjudication import Adjudication
from app.models.annotation import OVERALL, AnnotatorTally, Assignment, Judgment, Verdict
from app.models.base import Base, utcnow
from app.models.consensus import ConsensusFit
from app.models.export import AgreementCache, Snapshot, TrainingRun
from app.models.import_batch import ImportBatch
from app.models.item import IS_GOLD, Candidate, Item
from app.models.job import Job
from app.models.judge import Suggestion
from app.models.project import DEFAULT_DIMENSIONS, Project, ProjectMember
from app.models.registry import RegisteredModel
from app.models.token import ApiToken
from app.models.user import AuthSession, LoginFailure, User
from app.models.webhook import Webhook, WebhookDelivery

__all__ = [
    "IS_GOLD",
    "DEFAULT_DIMENSIONS",
    "OVERALL",
    "Adjudication",
    "AgreementCache",
    "ApiToken",
    "AnnotatorTally",
    "Assignment",
    "AuthSession",
    "Base",
    "Candidate",
    "ConsensusFit",
    "ImportBatch",
    "Item",
    "Job",
    "Judgment",
    "LoginFailure",
    "Project",
    "ProjectMember",
    "RegisteredModel",
    "Snapshot",
    "Suggestion",
    "TrainingRun",
    "User",
    "Verdict",
    "Webhook",
    "WebhookDelivery",
    "utcnow",
]
