"""Logs: JSON lines for a log pipeline, or plain text for a terminal; never personal data.

``INVOICER_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``,
``logger``, ``message``, and ``run_id``, ``chunk``, ``line``, ``invoice`` when the
line was logged while working on them, ``exc_info`` for a traceback);
``text`` (the default) one readable line. Either way every handler of the process
carries :class:`MaskPersonalData`: e-mail addresses and phone numbers in a message, a
traceback or any JSON field are masked before they are written. Invoice numbers,
accounts and run ids are not personal data and stay, so a line can be traced.

Context: :func:`log_context` (a context manager over :mod:`contextvars`) names what the
code below it works on; :class:`ContextFilter` copies it into every record.
python-json-logger does the JSON (a small, well-kept formatter over the standard
logging module), so third-party loggers (Celery, uvicorn, botocore) come out as JSON too.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

__all__ = ["ContextFilter", "JsonLines", "MaskPersonalData", "configure_logging",
           "install_log_masking", "log_context", "mask"]

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
# E.164 (``+5521987654321``) and bare runs of 9-15 digits (a phone number without its
# plus). Invoice numbers such as ``OI-2026-11-0000123`` have shorter digit groups.
_PHONE = re.compile(r"(?<![\w+])\+?\d{9,15}(?!\d)|(?<![\w])\+\d[\d ().-]{6,18}\d")

#: What the current code works on: ``run_id``, ``chunk``, ``line``, ``invoice``.
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "invoicer_log_context", default=MappingProxyType({}))
CONTEXT_FIELDS = ("run_id", "chunk", "line", "invoice")


def mask(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers masked (``m***@example.com``,
    ``+55*********21``)."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: _mask_digits(m.group(0)), text)


def _mask_digits(number: str) -> str:
    digits = [i for i, c in enumerate(number) if c.isdigit()]
    keep = set(digits[:2] + digits[-2:])
    return "".join(c if (not c.isdigit() or i in keep) else "*" for i, c in enumerate(number))


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Name what the code inside works on (``run_id=3, invoice="OI-1"``) for every log
    line it writes; nested contexts add to the outer one."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items()
                                               if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class MaskPersonalData(logging.Filter):
    """A handler filter: the formatted message and any traceback, masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


class ContextFilter(logging.Filter):
    """A handler filter: the :func:`log_context` fields on the record (as attributes
    for JSON, and as ``record.context``, `` [run 3 invoice OI-1]``, for text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        for name in CONTEXT_FIELDS:
            if name in context and not hasattr(record, name):
                setattr(record, name, context[name])
        record.context = "".join(f" {k.replace('_id', '')} {context[k]}"
                                 for k in CONTEXT_FIELDS if k in context)
        if record.context:
            record.context = f" [{record.context.strip()}]"
        return True


class JsonLines(JsonFormatter):
    """One JSON object per record; every string in it masked (a field passed with
    ``extra=`` too), tracebacks included."""

    def __init__(self) -> None:
        # uvicorn adds an ANSI-coloured copy of some messages: terminal decoration.
        super().__init__(reserved_attrs=[*_RESERVED, "context", "color_message"])

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        super().add_fields(log_data, record, message_dict)

    def formatException(self, ei: Any) -> str:
        return mask(super().formatException(ei))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: mask(v) if isinstance(v, str) else v for k, v in log_data.items()}


# The LogRecord attributes that are not fields of a JSON line (python-json-logger puts
# every other attribute of the record, i.e. ``extra=``, in the line).
_RESERVED = [
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName",
    "levelname", "levelno", "lineno", "module", "msecs", "message", "msg", "name",
    "pathname", "process", "processName", "relativeCreated", "stack_info", "thread",
    "threadName", "taskName",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Put :class:`MaskPersonalData` and :class:`ContextFilter` on every handler of
    ``logger`` (default: root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if not any(isinstance(f, MaskPersonalData) for f in handler.filters):
            handler.addFilter(MaskPersonalData())


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``INVOICER_LOG_FORMAT`` (``json`` or ``text``)."""
    return JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(fmt: str = "text", level: str | int = "WARNING",
                      logger: logging.Logger | None = None) -> None:
    """Log to stderr in ``fmt`` at ``level``, masked, with context; replaces the
    handlers of ``logger`` (default: root). Celery workers call it on the loggers
    Celery sets up; the CLI and ``invoicer serve`` on the root logger."""
    target = logger or logging.getLogger()
    for handler in list(target.handlers):
        target.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    target.addHandler(handler)
    target.setLevel(level if isinstance(level, int) else level.upper())
    install_log_masking(target)


def logging_config(fmt: str = "text", level: str = "WARNING") -> dict[str, Any]:
    """:func:`configure_logging` as a :func:`logging.config.dictConfig` dict, for
    servers that configure logging in each of their processes (uvicorn's
    ``log_config``): uvicorn's own loggers go through the same masked handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}, "mask": {"()": MaskPersonalData}},
        "formatters": {"main": {"()": formatter, "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "main", "filters": ["context", "mask"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            **{name: {"handlers": [], "propagate": True, "level": "NOTSET"}
               for name in ("uvicorn", "uvicorn.error")},
            # The access log stays on whatever the root level, as uvicorn has it (its
            # routes have their link tokens taken out: delivery.links).
            "uvicorn.access": {"handlers": ["stderr"], "propagate": False, "level": "INFO"},
        },
    }
