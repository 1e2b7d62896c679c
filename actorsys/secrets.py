"""Secrets: values that must never reach argv, a log line or an actor message.

A :class:`Secret` wraps one configured value (a SASL password, a job store
URL with its password) under a stable name such as
``kafka.properties.sasl.password``. Its ``repr`` and ``str`` show the name
only, so a config printed in a log or a traceback leaks nothing, and code
that needs the value says so by calling :meth:`Secret.reveal`.

Pickling carries the name only. Every Secret built in a process registers
its value in a process-wide registry, and unpickling looks the name up
there. That is what makes it safe to send a whole ``AppConfig`` in an actor
message:

- actor processes on this host are forked from the process that loaded the
  configuration, so they inherit the registry and resolve every name;
- on another host the member loads its own configuration (``actorsys join
  --config``), which registers that host's own values under the same names;
- a name nobody registered unpickles to a Secret whose ``reveal()`` raises
  ``ConfigError`` saying which secret this host lacks, at the point of use.

Should two Secrets of one name be built with different values, the later
one wins for unpickling: a receiving process resolves the name to its own
current configuration, never to the sender's.
"""

from __future__ import annotations

import re
from typing import Any, Final, NoReturn, SupportsIndex, final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from actorsys.errors import ConfigError

# Name -> value. No lock: one dict get or set is atomic, and a lock held by another
# thread at the moment Thespian forks an actor process would stay held in the child.
_REGISTRY: dict[str, str] = {}


@final
class Secret:
    """A named secret value whose repr, str and pickle never contain the value."""

    __slots__ = ("_name", "_value")

    _name: str
    _value: str | None

    def __init__(self, name: str, value: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a Secret needs a non-empty name")
        if not isinstance(value, str):
            raise TypeError(f"secret {name}: the value must be a string")
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_value", value)
        _REGISTRY[name] = value

    @classmethod
    def _unresolved(cls, name: str) -> Secret:
        """A Secret this process has no value for (built without registering)."""
        secret = object.__new__(cls)
        object.__setattr__(secret, "_name", name)
        object.__setattr__(secret, "_value", None)
        return secret

    @property
    def name(self) -> str:
        return self._name

    @property
    def resolved(self) -> bool:
        """Whether this process has a value for it (``reveal()`` will not raise)."""
        return self._value is not None

    def reveal(self) -> str:
        """The value itself: only for handing it to the library that needs it."""
        if self._value is None:
            raise ConfigError(
                f"secret {self._name} is not configured on this host: "
                "set it in this host's config or environment"
            )
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._name!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._name == other._name and self._value == other._value

    def __hash__(self) -> int:
        return hash((self._name, self._value))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Secret is immutable (cannot set {name})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Secret is immutable (cannot delete {name})")

    # Pickle by name only: the value never leaves the process.
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_unpickle, (self._name,))

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, tuple[str]]:
        return self.__reduce__()

    # Immutable: a copy is the same object (dataclasses.asdict deep-copies leaves).
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def _unpickle(name: str) -> Secret:
    """The Secret of ``name`` as this process configured it, or an unresolved one."""
    value = _REGISTRY.get(name)
    if value is None:
        return Secret._unresolved(name)
    return Secret(name, value)


def reveal(value: str | Secret) -> str:
    """A plain string from a value that may or may not be a Secret."""
    return value.reveal() if isinstance(value, Secret) else value


# --- which librdkafka properties are secret ------------------------------------------------

# Substrings that mark a credential in a librdkafka property name:
# sasl.password, ssl.key.password, ssl.keystore.password,
# sasl.oauthbearer.client.secret, sasl.oauthbearer.assertion.private.key.passphrase, ...
_SECRET_WORDS: Final = ("password", "secret", "passphrase")
# Properties that hold key material or credentials inline. Paths (ssl.key.location,
# ssl.keystore.location, sasl.kerberos.keytab, *.file) are not secret: the file is
# protected by its permissions, and its name helps whoever reads the log.
_SECRET_KEYS: Final = frozenset(
    {
        "sasl.oauthbearer.config",  # may carry a client secret or an unsecured JWT's claims
        "ssl.key.pem",  # a private key, inline
        "ssl_key",  # the same, in confluent-kafka's spelling
    }
)


def is_secret_property(key: str) -> bool:
    """Whether a librdkafka property holds a credential (and so must be a Secret).

    Any name containing ``password``, ``secret`` or ``passphrase``, any inline
    private key (a name ending in ``key.pem``), and ``sasl.oauthbearer.config``.
    Certificates (``ssl.certificate.pem``, ``ssl.ca.pem``) are public and paths
    to key files are not secret, so neither is.
    """
    name = key.strip().lower()
    return (
        any(word in name for word in _SECRET_WORDS)
        or name in _SECRET_KEYS
        or name.endswith("key.pem")
    )


# --- URLs with a password --------------------------------------------------------------------

_PASSWORD_PARAM: Final = re.compile(r"(?i)(password=)[^&\s]*")


def url_has_password(url: str) -> bool:
    """Whether ``url`` carries a password: ``user:pw@host`` or a ``*password=`` parameter
    (libpq's ``password`` and ``sslpassword``)."""
    parts = urlsplit(url)
    userinfo, at, _host = parts.netloc.rpartition("@")
    if at and userinfo.partition(":")[2]:
        return True
    return any("password" in name.lower() and value for name, value in parse_qsl(parts.query))


def redact_url(url: str | Secret) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    text = reveal(url)
    parts = urlsplit(text)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        # Rebuilt only then: urlunsplit would turn sqlite:///x into sqlite:/x.
        text = urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"))
    return _PASSWORD_PARAM.sub(r"\1***", text)
