"""Dashboard pages: thin views over selectors. Regulators only; everything else is a 403.

Person identifiers are masked for users without `supervision.view_person_identifiers`, in text and
in links: links to a masked person carry an opaque token instead of the id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from businesschain import selectors as chain_selectors
from businesschain.api.permissions import is_regulator
from businesschain.errors import DomainError, NotFound
from businesschain.protocol.identifiers import is_prc_id, mask_prc_id
from supervision import chain_selectors as supervision_chain
from supervision import dashboard_selectors as pages
from supervision import figures
from supervision.models import Alert
from supervision.selectors import AlertFilters
from supervision.selectors import alert_list as alert_query

PERSON_ID_PERMISSION = "supervision.view_person_identifiers"

SEVERITY_LABELS = {"critical": _("严重"), "high": _("高"), "medium": _("中"), "low": _("低")}
STATUS_LABELS = {
    "open": _("待处理"),
    "acknowledged": _("已确认"),
    "escalated": _("已升级"),
    "closed": _("已关闭"),
}
CHAIN_STATUS_LABELS = {
    "active": _("正常"),
    "stalled": _("停滞"),
    "forked": _("分叉"),
    "suspended": _("暂停"),
}
ALERT_CODE_LABELS = {
    "fork": _("分叉"),
    "bad_signature": _("签名无效"),
    "bad_prev_hash": _("前块哈希不符"),
    "chain_stalled": _("业务链停滞"),
    "circular_holding": _("循环持股"),
    "wash_trade": _("对倒交易"),
    "trade_ring": _("环形交易"),
    "related_party_trade": _("关联方交易"),
    "threshold_crossing": _("持股越线未披露"),
    "broker_stake_limit": _("券商股权超限"),
}
ENTITY_KIND_LABELS = {"org": _("机构"), "person": _("自然人"), "unknown": _("未登记")}

# Body keys that name entities or accounts (ECP/1 §3), for links on the transaction page.
ENTITY_KEYS = frozenset({"id", "issuer", "holder", "broker", "org", "person", "parties"})
ACCOUNT_KEYS = frozenset({"account", "buyer", "seller", "from", "to"})


# --- access -------------------------------------------------------------------------------------

ViewFunc = Callable[..., HttpResponse]


def regulator_required(view: ViewFunc) -> ViewFunc:
    """Login first (redirect to the login page), then regulators only (403)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_regulator(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def can_see_person_ids(user: Any) -> bool:
    return bool(user.has_perm(PERSON_ID_PERMISSION))


# --- entity links and masking -------------------------------------------------------------------

_TOKEN_PREFIX = "~"


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"supervision.entity-ref:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def entity_ref_encode(entity_id: str) -> str:
    """An opaque, encrypted stand-in for a person's id in a URL."""
    return _TOKEN_PREFIX + _fernet().encrypt(entity_id.encode()).decode()


def entity_ref_decode(ref: str) -> str:
    if not ref.startswith(_TOKEN_PREFIX):
        return ref
    try:
        return _fernet().decrypt(ref[len(_TOKEN_PREFIX):].encode()).decode()
    except InvalidToken:
        raise Http404("unknown entity reference") from None


@dataclass(frozen=True, slots=True)
class EntityLink:
    id_text: str  # the id as this user may see it
    name: str
    kind: str
    href: str
    masked: bool


class Presenter:
    """What one user may see of identifiers, and the links to show them."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.reveal = can_see_person_ids(request.user)
        self._people: set[str] = set()
        self._names: dict[str, tuple[str, str]] = {}

    def learn(self, ids: Iterable[str]) -> None:
        """Look up names and person-ness of `ids` (two queries) before rendering links to them."""
        wanted = {i for i in ids if isinstance(i, str) and i not in self._names}
        if not wanted:
            return
        self._names.update(pages.entity_names(wanted))
        self._people |= pages.person_ids_among(wanted)
        self._people |= {i for i, (_, kind) in self._names.items() if kind == "person"}

    def is_person(self, entity_id: str) -> bool:
        known = self._names.get(entity_id)
        if known is not None:
            return known[1] == "person"
        return entity_id in self._people or is_prc_id(entity_id)

    def id_text(self, entity_id: str) -> str:
        if not self.reveal and self.is_person(entity_id):
            return mask_prc_id(entity_id)
        return entity_id

    def entity(self, entity_id: str, *, name: str | None = None, kind: str | None = None) -> EntityLink:
        known_name, known_kind = self._names.get(entity_id, ("", "unknown"))
        masked = not self.reveal and self.is_person(entity_id)
        ref = entity_ref_encode(entity_id) if masked else entity_id
        return EntityLink(
            id_text=mask_prc_id(entity_id) if masked else entity_id,
            name=name or known_name,
            kind=kind or known_kind,
            href=reverse("supervision:entity-detail", args=[ref]),
            masked=masked,
        )

    def mask_json(self, value: Any) -> Any:
        if self.reveal:
            return value
        strings = list(pages.strings_in(value))
        self.learn(strings)
        return pages.mask_json(value, {s for s in strings if self.is_person(s)})


# --- helpers ------------------------------------------------------------------------------------


def _english() -> bool:
    return (get_language() or "").startswith("en")


def alert_title(alert: Alert) -> str:
    return alert.title_en if _english() and alert.title_en else alert.title_zh


def alert_detail_text(alert: Alert) -> str:
    return alert.detail_en if _english() and alert.detail_en else alert.detail_zh


def _labels(mapping: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in mapping.items()}


def _not_found(error: DomainError) -> Http404:
    return Http404(error.message)


# --- pages --------------------------------------------------------------------------------------


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and the smoke test."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


@require_GET
@regulator_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Overview: chains, live alerts, recent rejections, the supervision chain, two charts."""
    now = timezone.now()
    chains = pages.chain_overview(now=now)
    minutes, series = pages.blocks_per_minute_series(now=now)
    alerts = list(Alert.objects.select_related("assignee").order_by("-created_at", "-id")[:20])
    rejections = list(chain_selectors.rejection_list()[:15])
    context = {
        "chains": chains,
        "alerts": [_alert_row(a) for a in alerts],
        "rejections": rejections,
        "supervision": supervision_chain.supervision_status(now=now),
        "blocks_figure": figures.blocks_per_minute_figure(
            minutes, series, title=str(_("每分钟区块数（近 30 分钟）")), y_title=str(_("区块/分钟"))
        ),
        "severity_figure": figures.alerts_by_severity_figure(
            pages.alert_counts_by_severity(),
            severity_labels=_labels(SEVERITY_LABELS),
            status_labels=_labels(STATUS_LABELS),
            title=str(_("告警（按严重程度）")),
        ),
        "live_labels": {
            "severity": _labels(SEVERITY_LABELS),
            "status": _labels(STATUS_LABELS),
            "chain_status": _labels(CHAIN_STATUS_LABELS),
            "code": _labels(ALERT_CODE_LABELS),
            "connected": str(_("实时连接")),
            "connecting": str(_("正在连接…")),
            "disconnected": str(_("连接中断，正在重连…")),
            "seconds": str(_("秒")),
            "blocks_behind": str(_("落后 %(n)s 块")),
        },
    }
    return render(request, "supervision/dashboard.html", context)


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert,
        "title": alert_title(alert),
        "code_label": ALERT_CODE_LABELS.get(alert.code, alert.code),
        "severity_label": SEVERITY_LABELS.get(alert.severity, alert.severity),
        "status_label": STATUS_LABELS.get(alert.status, alert.status),
    }


class AlertFilterForm(forms.Form):
    code = forms.ChoiceField(label=_("类型"), required=False)
    severity = forms.ChoiceField(
        label=_("严重程度"), required=False, choices=[("", _("全部")), *SEVERITY_LABELS.items()]
    )
    status = forms.ChoiceField(
        label=_("状态"), required=False, choices=[("", _("全部")), *STATUS_LABELS.items()]
    )
    chain = forms.ChoiceField(label=_("业务链"), required=False)

    def __init__(self, *args: Any, codes: list[str], chains: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        codes = sorted(set(codes) | set(ALERT_CODE_LABELS))
        self.fields["code"].choices = [("", _("全部"))] + [(c, ALERT_CODE_LABELS.get(c, c)) for c in codes]
        self.fields["chain"].choices = [("", _("全部"))] + [(c, c) for c in chains]


@require_GET
@regulator_required
def alert_list(request: HttpRequest) -> HttpResponse:
    choices = pages.alert_filter_choices()
    form = AlertFilterForm(request.GET or None, codes=choices["codes"], chains=choices["chains"])
    data = form.cleaned_data if form.is_valid() else {}
    qs = alert_query(
        filters=AlertFilters(
            codes=(data["code"],) if data.get("code") else (),
            severities=(data["severity"],) if data.get("severity") else (),
            statuses=(data["status"],) if data.get("status") else (),
            chain=data.get("chain") or None,
        )
    )
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "supervision/alert_list.html",
        {
            "form": form,
            "page": page,
            "rows": [_alert_row(a) for a in page.object_list],
            "query": query.urlencode(),
        },
    )


class TriageForm(forms.Form):
    ACTIONS = {
        "acknowledge": "acknowledged",
        "escalate": "escalated",
        "close": "closed",
        "reopen": "open",
        "assign_me": None,
        "note": None,
    }
    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    note = forms.CharField(label=_("备注"), required=False, max_length=4000,
                           widget=forms.Textarea(attrs={"rows": 3}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "note" and not (data.get("note") or "").strip():
            self.add_error("note", _("请填写备注。"))
        return data


def _alert_context(request: HttpRequest, alert: Alert, form: TriageForm) -> dict[str, Any]:
    presenter = Presenter(request)
    presenter.learn(alert.entities)
    history = list(alert.history.select_related("by").order_by("at", "id"))
    return {
        "row": _alert_row(alert),
        "alert": alert,
        "detail_text": alert_detail_text(alert),
        "entities": [presenter.entity(e) for e in alert.entities],
        "evidence": json.dumps(presenter.mask_json(alert.evidence), ensure_ascii=False, indent=2)
        if alert.evidence else "",
        "history": history,
        "form": form,
        "actions": _triage_actions(alert, request.user),
    }


def _triage_actions(alert: Alert, user: Any) -> list[dict[str, Any]]:
    """The triage buttons, each enabled when the service would accept it."""
    from supervision.services import transition_allowed

    def move(target: str) -> bool:
        return target != alert.status and transition_allowed(alert.status, target)

    return [
        {"name": "acknowledge", "label": _("确认"), "enabled": move("acknowledged"), "css": "primary"},
        {"name": "escalate", "label": _("升级"), "enabled": move("escalated"), "css": ""},
        {"name": "close", "label": _("关闭"), "enabled": move("closed"), "css": ""},
        {"name": "reopen", "label": _("重新打开"), "enabled": move("open"), "css": ""},
        {"name": "assign_me", "label": _("指派给我"), "enabled": alert.assignee_id != user.pk, "css": ""},
        {"name": "note", "label": _("添加备注"), "enabled": True, "css": ""},
    ]


@require_GET
@regulator_required
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("assignee"), pk=alert_id)
    return render(request, "supervision/alert_detail.html", _alert_context(request, alert, TriageForm()))


@require_POST
@regulator_required
def alert_triage(request: HttpRequest, alert_id: int) -> HttpResponse:
    """The triage buttons: one service call; a refusal is shown on the form."""
    from supervision.services import alert_update

    alert = get_object_or_404(Alert, pk=alert_id)
    form = TriageForm(request.POST)
    status_code = 400
    if form.is_valid():
        action = form.cleaned_data["action"]
        note = (form.cleaned_data.get("note") or "").strip() or None
        changes: dict[str, Any] = {}
        if TriageForm.ACTIONS[action] is not None:
            changes["status"] = TriageForm.ACTIONS[action]
        if action == "assign_me":
            changes["assignee"] = request.user
        try:
            alert_update(alert_id=alert.pk, by=request.user, note=note, **changes)
        except DomainError as error:
            form.add_error(None, error.message)
            status_code = error.http_status
        else:
            return redirect("supervision:alert-detail", alert_id=alert.pk)
    alert.refresh_from_db()
    return render(request, "supervision/alert_detail.html", _alert_context(request, alert, form),
                  status=status_code)


# --- block explorer -----------------------------------------------------------------------------


@require_GET
@regulator_required
def chain_detail(request: HttpRequest, chain_id: str) -> HttpResponse:
    try:
        chain = chain_selectors.chain_get(chain_id=chain_id)
    except NotFound as error:
        raise _not_found(error) from error
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        before = None
    blocks = pages.recent_blocks(chain_id=chain.id, before=before)
    row = next((r for r in pages.chain_overview() if r.id == chain.id), None)
    return render(
        request,
        "supervision/chain_detail.html",
        {
            "chain": chain,
            "summary": chain_selectors.chain_summary(chain),
            "row": row,
            "status_label": CHAIN_STATUS_LABELS.get(chain.status, chain.status),
            "blocks": blocks,
            "older": blocks[-1].height if len(blocks) == 50 and blocks[-1].height > 0 else None,
            "rejections": list(chain_selectors.rejection_list(chain_id=chain.id)[:20]),
        },
    )


@require_GET
@regulator_required
def block_detail(request: HttpRequest, chain_id: str, height: int) -> HttpResponse:
    try:
        block = chain_selectors.block_get(chain_id=chain_id, height=height)
    except NotFound as error:
        raise _not_found(error) from error
    presenter = Presenter(request)
    transactions = list(pages.block_transactions(block))
    bodies = [json.loads(tx.body) for tx in transactions]
    masked = presenter.mask_json(bodies)
    verification = block.verification or {}
    return render(
        request,
        "supervision/block_detail.html",
        {
            "block": block,
            "header": chain_selectors.block_header(block),
            "verification": verification,
            "unresolved": presenter.mask_json(verification.get("unresolved") or {}),
            "anchor": supervision_chain.anchor_status(chain_id=block.chain_id, height=block.height),
            "transactions": [
                {"tx": tx, "summary": _body_summary(body)} for tx, body in zip(transactions, masked, strict=True)
            ],
            "has_prev": block.height > 0,
            "has_next": block.height < block.chain.head_height,
        },
    )


def _body_summary(body: dict[str, Any]) -> str:
    """A one-line summary of a (masked) transaction body for the block's table."""
    parts = []
    for key, value in body.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if isinstance(value, dict):
            text = "{…}"
        parts.append(f"{key}={text}")
    line = " · ".join(parts)
    return line if len(line) <= 160 else line[:157] + "…"


@require_GET
@regulator_required
def transaction_detail(request: HttpRequest, tx_id: str) -> HttpResponse:
    try:
        tx = chain_selectors.transaction_get(tx_id=tx_id, chain_id=request.GET.get("chain") or None)
    except NotFound as error:
        raise _not_found(error) from error
    presenter = Presenter(request)
    body = json.loads(tx.body)
    presenter.learn(pages.strings_in(body))
    fields = []
    for key, value in body.items():
        values = value if isinstance(value, list) else [value]
        if key in ENTITY_KEYS and all(isinstance(v, str) for v in values):
            fields.append({"key": key, "entities": [presenter.entity(v) for v in values]})
        elif key in ACCOUNT_KEYS and isinstance(value, str):
            fields.append({"key": key, "account": value})
        else:
            fields.append({"key": key, "text": json.dumps(presenter.mask_json(value), ensure_ascii=False)
                           if not isinstance(value, str) else presenter.mask_json(value)})
    return render(
        request,
        "supervision/transaction_detail.html",
        {
            "tx": tx,
            "fields": fields,
            "raw": json.dumps(
                {"type": tx.type, "nonce": tx.nonce, "body": presenter.mask_json(body), "tx_id": tx.tx_id},
                ensure_ascii=False, indent=2,
            ),
        },
    )
