"""Errors a lab user can meet, each saying what was wrong and what to do next.

The tree::

    LabError
    ├── ConfigError (ValueError)          a setting or argument is not allowed
    ├── LocalCloudError (RuntimeError)    the local cloud cannot start or answer
    │   └── PortInUseError                its port is taken by another program
    ├── StackError (RuntimeError)         the stack failed or is in a bad state
    ├── ThreatListError (ValueError)      a threat list line is not valid TXT
    ├── EventPatternError (ValueError)    an EventBridge pattern is invalid
    ├── NotDeployedError (LookupError)    a step needs the stack to exist first
    ├── UnknownScenarioError (KeyError)   no scenario has that id or number
    └── WaitTimeoutError (TimeoutError)   something did not happen in time
"""

from __future__ import annotations


class LabError(Exception):
    """Base class of every error labkit raises for a user to read."""


class ConfigError(LabError, ValueError):
    """A mode, region, port or argument has a value that is not allowed."""


class LocalCloudError(LabError, RuntimeError):
    """The local cloud could not be started, reached or stopped."""


class PortInUseError(LocalCloudError):
    """The local cloud's port is held by another program."""


class StackError(LabError, RuntimeError):
    """The CloudFormation stack failed, or is in a state labkit cannot use."""


class ThreatListError(LabError, ValueError):
    """A threat list line is not an IPv4 address, a CIDR range, a comment nor blank.

    Also raised for an address given to be written that would not make one
    entry line (empty, several lines, or a ``#`` that would make a comment).
    """


class EventPatternError(LabError, ValueError):
    """An EventBridge event pattern is not valid."""


class NotDeployedError(LabError, LookupError):
    """A step needs a resource that has not been created yet."""


class WaitTimeoutError(LabError, TimeoutError):
    """An awaited finding, message or state did not arrive in time."""


class UnknownScenarioError(LabError, KeyError):
    """No scenario has the id or number asked for."""

    def __str__(self) -> str:
        # KeyError would show the message in quotes, as if it were a key.
        return str(self.args[0]) if self.args else ""
