"""The ledger's tables, as the migrations leave them at head.

The schema is created and changed only by the Alembic migrations in ``migrations/``;
these declarations describe it for the stores' queries (and for autogenerating the next
migration), and a test checks that they match what the migrations build. The
vocabularies the CHECK constraints hold (states, channels, roles) are declared here,
once, for the stores to share.

Which store owns which table: ``invoices`` and ``payment_events``
(:mod:`ledger.invoices`); ``runs``, ``run_chunks``, ``rejects`` and ``run_counters``
(:mod:`ledger.runs`); ``deliveries`` and ``suppressions`` (:mod:`ledger.deliveries`);
``print_batches`` and
``print_batch_items`` (:mod:`ledger.print_batches`); ``api_keys`` (:mod:`ledger.api_keys`);
``sms_codes``, ``rate_limits`` and ``second_copies`` (:mod:`ledger.access`);
``delivery_preferences`` (:mod:`ledger.preferences`); ``detailed_bills``
(:mod:`ledger.detailed_bills`); ``fleet_managers`` and ``invoice_lines`` (:mod:`ledger.fleet`).
"""

from __future__ import annotations

import sqlalchemy as sa

from invoicer.ledger.db import BigId, Money, UTCDateTime, in_list

#: ``claimed``: the number is taken and someone is (or was) rendering it;
#: ``archived``: the PDF is in the archive and its checksum is recorded: done.
INVOICE_STATUSES = ("claimed", "archived")
PAYMENT_STATUSES = ("unpaid", "paid", "overdue", "partially_paid")
DELIVERY_MODES = ("electronic", "paper", "both")
CHANNELS = ("email", "sms", "print")
#: ``bounced``: handed over, then the far end said it could not be delivered (a DSN
#: ``5.x.x``, a provider's bounce event, an SMS receipt "undeliverable").
DELIVERY_STATES = ("pending", "sending", "sent", "failed_permanent", "unknown", "bounced")
#: Why e-mail no longer goes to an address (``suppressions``).
SUPPRESSION_REASONS = ("complaint", "bounce")
#: A print batch's life: ``open`` takes paper invoices; ``closing`` has its membership
#: and order frozen (sealed by size or on demand) while its PDF is made; ``closed`` is
#: archived and handed to the print shop; ``printed`` is acknowledged by the shop.
PRINT_BATCH_STATES = ("open", "closing", "closed", "printed")
#: A chunk of a bill run (see :mod:`ledger.runs`).
CHUNK_STATES = ("planned", "queued", "running", "done", "failed")
TERMINAL_CHUNK_STATES = ("done", "failed")
#: A subscriber's e-invoice/paper choice: ``unconfirmed`` until the e-mail link is
#: opened (an electronic choice), ``confirmed`` (the account's choice), ``superseded``.
PREFERENCE_STATES = ("unconfirmed", "confirmed", "superseded")
#: What an API key may do: ``print_shop`` pulls and acknowledges its operators' print
#: batches; ``billing`` enqueues runs and reports payments; ``operations`` watches.
API_KEY_ROLES = ("billing", "print_shop", "operations")

metadata = sa.MetaData(
    # Named constraints, because SQLite's batch migrations can only drop what has a name.
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# ---------------------------------------------------------------------------- runs

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_sha256", sa.String(64)),
    sa.Column("expected", sa.Integer),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
)

# No longer written: a run's outcomes are counted per chunk (``run_chunks.outcomes``),
# whoever executes it. Kept because the migrations create it; dropping it is a schema
# change of its own.
run_counters = sa.Table(
    "run_counters",
    metadata,
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("outcome", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

run_chunks = sa.Table(
    "run_chunks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("start_byte", sa.BigInteger, nullable=False),
    sa.Column("end_byte", sa.BigInteger, nullable=False),
    sa.Column("first_line", sa.Integer, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("outcomes", sa.JSON),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "seq"),
    sa.CheckConstraint(f"state IN ({in_list(CHUNK_STATES)})", name="state"),
    sa.CheckConstraint("start_byte >= 0 AND end_byte > start_byte AND lines > 0",
                       name="range"),
    sa.Index(None, "state", "updated_at"),
    sa.Index(None, "run_id", "state"),
)

rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    # The source's SHA-256 when known (so a resumed run of the same file dead-letters a
    # line once, whatever run sees it), else "run:<id>".
    sa.Column("source_key", sa.String(80), nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("invoice_number", sa.Text),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("issues", sa.JSON, nullable=False),
    # At most RAW_KEPT bytes of the line (ledger.runs); a longer line is whole in the
    # file ``raw_file`` names, and ``raw_size`` is its length (migration 0012).
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("raw_size", sa.BigInteger),
    sa.Column("raw_file", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source_key", "line"),
    sa.Index(None, "run_id", "reason"),
)

# ---------------------------------------------------------------------------- invoices

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("issue_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("total", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("locale", sa.String(35), nullable=False),
    sa.Column("delivery_mode", sa.String(16), nullable=False),
    sa.Column("postal_code", sa.String(32)),
    sa.Column("country", sa.String(2)),
    sa.Column("phone", sa.String(16)),
    sa.Column("record_sha256", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("archive_key", sa.String(512)),
    sa.Column("renderer_version", sa.String(64)),
    sa.Column("pages", sa.Integer),
    sa.Column("size", sa.BigInteger),
    sa.Column("payment_status", sa.String(16), nullable=False),
    sa.Column("paid_amount", Money),
    sa.Column("paid_on", sa.Date),
    # The run and line that issued the invoice: the claimer's while it is ``claimed``,
    # then the one whose attempt archived it (exactly one, by compare-and-set), so that
    # every archived invoice is counted by one line of one run.
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id")),
    sa.Column("source_line", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("archived_at", UTCDateTime),
    # Contract 1.1: a number is issued with one content (SHA-256 of the canonical
    # record without ``delivery``); another content under it is a ``conflict``.
    sa.Column("content_sha256", sa.String(64)),
    # The previous invoice the bill-shock sentence compared with, fixed at the claim.
    sa.Column("previous_number", sa.String(64)),
    # ... and the bill-shock share it was rendered with (a decimal string).
    sa.Column("shock_share", sa.String(16)),
    # Its charges per category (decimal strings): what the next invoice compares with.
    sa.Column("charges_by_category", sa.JSON),
    # The e-invoice: its format, and the XML archived beside the PDF (not Factur-X,
    # whose XML is inside the PDF).
    sa.Column("einvoice_format", sa.String(16)),
    sa.Column("einvoice_sha256", sa.String(64)),
    sa.Column("einvoice_size", sa.BigInteger),
    sa.UniqueConstraint("operator_id", "number"),
    sa.CheckConstraint(f"status IN ({in_list(INVOICE_STATUSES)})", name="status"),
    sa.CheckConstraint(f"payment_status IN ({in_list(PAYMENT_STATUSES)})", name="payment_status"),
    sa.CheckConstraint(f"delivery_mode IN ({in_list(DELIVERY_MODES)})", name="delivery_mode"),
    sa.CheckConstraint("kind IN ('original', 'duplicate')", name="kind"),
    sa.Index(None, "operator_id", "account", "issue_date"),
    sa.Index(None, "phone"),
    sa.Index(None, "run_id", "status"),
)

payment_events = sa.Table(
    "payment_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("amount", Money),
    sa.Column("paid_on", sa.Date),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({in_list(PAYMENT_STATUSES)})", name="status"),
    sa.Index(None, "invoice_id", "id"),
)

# ---------------------------------------------------------------------------- deliveries

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("handed_off_at", UTCDateTime),
    # A fallback (SMS, then paper) names the delivery it replaces: at most once each.
    sa.Column("replaces_id", BigId, sa.ForeignKey("deliveries.id")),
    sa.Column("recipient", sa.Text),
    sa.Column("reference", sa.String(255)),
    sa.Column("report_status", sa.String(32)),
    sa.Column("reported_at", UTCDateTime),
    sa.Column("owner", sa.String(128)),
    sa.UniqueConstraint("invoice_id", "channel"),
    sa.UniqueConstraint("replaces_id"),
    sa.CheckConstraint(f"channel IN ({in_list(CHANNELS)})", name="channel"),
    sa.CheckConstraint(f"state IN ({in_list(DELIVERY_STATES)})", name="state"),
    sa.Index(None, "state", "updated_at"),
)

# E-mail no longer goes to these addresses (a complaint, a hard bounce), per operator.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("operator_id", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("delivery_id", BigId, sa.ForeignKey("deliveries.id")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"reason IN ({in_list(SUPPRESSION_REASONS)})", name="reason"),
)

# ---------------------------------------------------------------------------- print batches

print_batches = sa.Table(
    "print_batches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("max_documents", sa.Integer, nullable=False),
    sa.Column("max_sheets", sa.Integer, nullable=False),
    sa.Column("documents", sa.Integer, nullable=False),
    sa.Column("sheets", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sealed_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("printed_at", UTCDateTime),
    sa.Column("closer", sa.String(64)),
    sa.Column("closer_since", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("pdf_key", sa.String(512)),
    sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("pdf_size", sa.BigInteger),
    sa.Column("csv_key", sa.String(512)),
    sa.Column("json_key", sa.String(512)),
    sa.Column("printed_documents", sa.Integer),
    sa.Column("printed_sheets", sa.Integer),
    sa.CheckConstraint(f"state IN ({in_list(PRINT_BATCH_STATES)})", name="state"),
    sa.CheckConstraint("max_documents > 0 AND max_sheets > 0", name="limits"),
    # At most one open batch per operator: where concurrent joiners meet.
    sa.Index(None, "operator_id", unique=True, sqlite_where=sa.text("state = 'open'"),
             postgresql_where=sa.text("state = 'open'")),
    sa.Index(None, "state", "operator_id"),
)

# The primary key is the invoice: an invoice is in at most one batch, whoever races.
print_batch_items = sa.Table(
    "print_batch_items",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True,
              autoincrement=False),
    sa.Column("batch_id", BigId, sa.ForeignKey("print_batches.id"), nullable=False),
    sa.Column("delivery_id", BigId, sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("pages", sa.Integer, nullable=False),
    sa.Column("sheets", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer),
    sa.Column("first_page", sa.Integer),
    sa.Column("joined_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("batch_id", "seq"),
)

# ---------------------------------------------------------------------------- API keys

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("operators", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.UniqueConstraint("prefix"),
    sa.CheckConstraint(f"role IN ({in_list(API_KEY_ROLES)})", name="role"),
)

# ---------------------------------------------------------------------------- subscriber access

sms_codes = sa.Table(
    "sms_codes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("phone", sa.String(16), nullable=False),
    # The account the code opens: resolved when the code is made, from the phone's
    # latest archived invoice.
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("superseded_at", UTCDateTime),
    sa.Index(None, "phone", "created_at"),
)

# Fixed-window counters: one row per (bucket, window); a hit is one atomic upsert.
# ``bucket`` is a SHA-256 (it would otherwise hold phone numbers and client addresses).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("window_start", UTCDateTime, primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Index(None, "window_start"),
)

# One second copy per invoice, whoever asks and however often.
second_copies = sa.Table(
    "second_copies",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("archive_key", sa.String(512), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("pages", sa.Integer),
    sa.Column("renderer_version", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The detailed bill on demand (the call-details annex as a PDF of its own), once per
# invoice and line: ``line`` is a line's ``services[].id``, or "" for the whole account.
detailed_bills = sa.Table(
    "detailed_bills",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("line", sa.String(64), primary_key=True),
    sa.Column("archive_key", sa.String(512), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("pages", sa.Integer),
    sa.Column("renderer_version", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Business accounts: the phones (and e-mail addresses) the billing system lets sign in
# as the account's fleet managers.
fleet_managers = sa.Table(
    "fleet_managers",
    metadata,
    sa.Column("operator_id", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(16), primary_key=True),
    sa.Column("email", sa.String(254)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "phone"),
)

# The lines (phone numbers among ``services[].id``) each business invoice covers: which
# account a line's own phone belongs to, and which invoices it may see a section of.
invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("phone", sa.String(16), primary_key=True),
    sa.Index(None, "phone"),
)

# ---------------------------------------------------------------------------- preferences

# One row per choice a subscriber made (page or API, after an SMS-code login); see
# ``ledger.preferences`` and ``workflows.preferences``.
delivery_preferences = sa.Table(
    "delivery_preferences",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("email", sa.String(320)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("requested_via", sa.String(16), nullable=False),
    sa.Column("requested_from", sa.String(64)),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("confirmed_via", sa.String(32)),
    sa.Column("superseded_at", UTCDateTime),
    sa.Column("applied_at", UTCDateTime),
    sa.Column("applied_invoice", sa.String(64)),
    sa.CheckConstraint(f"mode IN ({in_list(DELIVERY_MODES)})", name="mode"),
    sa.CheckConstraint(f"state IN ({in_list(PREFERENCE_STATES)})", name="state"),
    sa.CheckConstraint("mode = 'paper' OR email IS NOT NULL", name="email"),
    sa.Index(None, "operator_id", "account", "confirmed_at"),
)

# ---------------------------------------------------------------------------- webhooks
#
# The outbox of events for the billing system (:mod:`ledger.webhooks`): an event is
# written in the transaction of the state change it announces, with one
# ``webhook_deliveries`` row per endpoint that should receive it; senders lease due rows,
# POST them and log every attempt.

#: ``pending``: to be sent (again), when ``next_attempt_at`` comes; ``delivered``: an
#: endpoint answered 2xx.
WEBHOOK_DELIVERY_STATES = ("pending", "delivered")

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # An operator id, or ``*`` for every operator's events.
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("removed_at", UTCDateTime),
    sa.Index(None, "operator_id"),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("operator_id", sa.String(64)),
    sa.Column("invoice_id", BigId),
    # Events with the same key reach an endpoint in the order they were recorded.
    sa.Column("order_key", sa.String(128), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("event_id"),
    sa.Index(None, "created_at"),
    sa.Index(None, "invoice_id"),
    sa.Index(None, "type"),  # metrics count events by type (bounces, fallbacks)
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_pk", BigId, sa.ForeignKey("webhook_events.id"), nullable=False),
    sa.Column("endpoint_id", BigId, sa.ForeignKey("webhook_endpoints.id"), nullable=False),
    sa.Column("order_key", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", UTCDateTime),
    sa.UniqueConstraint("event_pk", "endpoint_id"),
    sa.CheckConstraint(f"state IN ({in_list(WEBHOOK_DELIVERY_STATES)})", name="state"),
    sa.Index(None, "state", "next_attempt_at"),
    sa.Index(None, "endpoint_id", "order_key", "state", "event_pk"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", BigId, sa.ForeignKey("webhook_deliveries.id"), nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index(None, "delivery_id", "id"),
)
