"""The node types: ``from webflow import flow`` then ``flow.Start(...)`` and so on."""

from .end import End, EndActivation
from .func import FuncActivation, Function, Handler, HandlerActivation
from .gates import (
    AbstractGateActivation,
    If,
    IfActivation,
    Split,
    SplitActivation,
    Switch,
    SwitchActivation,
)
from .job import AbstractJobActivation, Job, JobActivation
from .join import Join, JoinActivation
from .start import Start, StartActivation, StartFunction
from .subprocess import Subprocess, SubprocessActivation
from .timer import AbstractTimerActivation, Timeout, TimeoutActivation, Timer, TimerActivation
from .view import View, ViewActivation

__all__ = [
    "AbstractGateActivation", "AbstractJobActivation", "End", "EndActivation",
    "FuncActivation", "Function", "Handler", "HandlerActivation", "If", "IfActivation",
    "Job", "JobActivation", "Join", "JoinActivation", "Split", "SplitActivation", "Start",
    "StartActivation", "StartFunction", "Subprocess", "SubprocessActivation", "Switch",
    "SwitchActivation", "View", "ViewActivation",
    "StartActivation", "StartFunction", "Switch", "SwitchActivation", "View", "ViewActivation",
    "AbstractTimerActivation", "Timeout", "TimeoutActivation", "Timer", "TimerActivation",
]
