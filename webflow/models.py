"""The rows: ``from webflow.models import Process, Task, User, Group``."""

from .core.models import (
    Base,
    Group,
    Notification,
    NotificationSetting,
    OverdueNotice,
    Process,
    SavedFilter,
    SearchDocument,
    Task,
    TaskEvent,
    User,
)

__all__ = ["Base", "Group", "Notification", "NotificationSetting", "OverdueNotice", "Process",
           "SavedFilter", "SearchDocument", "Task", "TaskEvent", "User"]
