"""Dashboard pages: thin views over selectors. Regulators only; everything else is a 403.

Person identifiers are masked for users without `supervision.view_person_identifiers`
(`penetration.IdentifierMask`, the rule the API follows too), in text and in links: links to a
masked person carry an opaque token instead of the id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import wraps
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
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
from supervision import chain_selectors as supervision_chain
from supervision import dashboard_selectors as pages
from supervision import figures, penetration
from supervision.models import Alert
from supervision.selectors import AlertFilters, alert_mask
from supervision.selectors import alert_list as alert_query
from supervision.services import MAX_NOTE_LENGTH, alert_update, transition_allowed

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
    "fork": _("区块分叉"),
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
ROLE_LABELS = {
    "legal_rep": _("法定代表人"),
    "director": _("董事"),
    "supervisor": _("监事"),
    "executive": _("高级管理人员"),
    "actual_controller": _("实际控制人"),
    "sponsor_rep": _("保荐代表人"),
}
OWNER_REASON_LABELS = {"ownership": _("持股"), "actual_controller": _("实际控制人")}

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


# --- entity links and masking -------------------------------------------------------------------

_TOKEN_PREFIX = "~"  # noqa: S105 - a URL marker, not a secret


def _cipher() -> AESSIV:
    key = hashlib.sha512(f"supervision.entity-ref:{settings.SECRET_KEY}".encode()).digest()
    return AESSIV(key)


def entity_ref_encode(entity_id: str) -> str:
    """An opaque stand-in for a person's id in a URL: AES-SIV under a key derived from SECRET_KEY,
    deterministic so one person always has one URL."""
    token = base64.urlsafe_b64encode(_cipher().encrypt(entity_id.encode(), None)).decode().rstrip("=")
    return _TOKEN_PREFIX + token


def entity_ref_decode(ref: str) -> str:
    """The entity id behind a URL part: a plain id, or a token from `entity_ref_encode`."""
    if not ref.startswith(_TOKEN_PREFIX):
        return ref
    token = ref[len(_TOKEN_PREFIX):]
    try:
        return _cipher().decrypt(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), None).decode()
    except (InvalidTag, ValueError):
        raise Http404("unknown entity reference") from None


@dataclass(frozen=True, slots=True)
class EntityLink:
    id_text: str  # the id as this user may see it
    name: str
    kind: str
    href: str
    masked: bool


class Presenter:
    """Names of and links to the entities a page shows; what of their ids one user may see is
    `penetration.IdentifierMask`'s rule (`mask`)."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.mask = penetration.IdentifierMask.for_user(request.user)
        self._names: dict[str, tuple[str, str]] = {}
        self._looked_up: set[str] = set()

    def learn(self, ids: Iterable[str]) -> None:
        """Look up names and kinds of `ids` (one query) before rendering links to them."""
        wanted = {i for i in ids if isinstance(i, str) and i not in self._looked_up}
        if not wanted:
            return
        self._looked_up |= wanted
        names = pages.entity_names(wanted)
        self._names.update(names)
        self.mask.know({i: kind for i, (_, kind) in names.items()})

    def id_text(self, entity_id: str) -> str:
        return self.mask(entity_id)

    def entity(self, entity_id: str, *, name: str | None = None, kind: str | None = None) -> EntityLink:
        known_name, known_kind = self._names.get(entity_id, ("", "unknown"))
        if kind:
            self.mask.know({entity_id: kind})  # a kind the caller read with the name
        masked = not self.mask.reveal and self.mask.is_person(entity_id)
        ref = entity_ref_encode(entity_id) if masked else entity_id
        return EntityLink(
            id_text=self.mask(entity_id),
            name=name or known_name,
            kind=kind or known_kind,
            href=reverse("supervision:entity-detail", args=[ref]),
            masked=masked,
        )

    def mask_json(self, value: Any) -> Any:
        if self.mask.reveal:
            return value
        self.learn(penetration.json_strings(value))
        return self.mask.json(value)


# --- helpers ------------------------------------------------------------------------------------


def _english() -> bool:
    return (get_language() or "").startswith("en")


def alert_title(alert: Alert) -> str:
    return alert.title_en if _english() and alert.title_en else alert.title_zh


def alert_detail_text(alert: Alert) -> str:
    return alert.detail_en if _english() and alert.detail_en else alert.detail_zh


def _labels(mapping: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in mapping.items()}


def percent(fraction: str | Decimal) -> str:
    """"0.600000" → "60.00%"."""
    return f"{(Decimal(fraction) * 100).quantize(Decimal('0.01'))}%"


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
    alerts = list(alert_query()[:20])
    rejections = list(chain_selectors.rejection_list()[:15])
    context = {
        "chains": chains,
        "alerts": _alert_rows(request, alerts),
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
            "expired": str(_("会话已过期，实时推送已停止。")),
            "sign_in": str(_("重新登录")),
            "forbidden": str(_("无权接收实时推送，实时推送已停止。")),
            "seconds": str(_("秒")),
        },
    }
    return render(request, "supervision/dashboard.html", context)


def _alert_rows(request: HttpRequest, alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    alerts = list(alerts)
    mask = alert_mask(alerts, reveal=penetration.can_see_person_ids(request.user))
    return [_alert_row(a, mask) for a in alerts]


def _alert_row(alert: Alert, mask: penetration.IdentifierMask) -> dict[str, Any]:
    return {
        "alert": alert,
        "title": mask.text(alert_title(alert)),
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
        cast(forms.ChoiceField, self.fields["code"]).choices = [
            ("", _("全部")), *((c, ALERT_CODE_LABELS.get(c, c)) for c in codes)
        ]
        cast(forms.ChoiceField, self.fields["chain"]).choices = [("", _("全部")), *((c, c) for c in chains)]


@require_GET
@regulator_required
def alert_list(request: HttpRequest) -> HttpResponse:
    choices = pages.alert_filter_choices()
    form = AlertFilterForm(request.GET or None, codes=choices["codes"], chains=choices["chains"])
    form.is_valid()
    data = getattr(form, "cleaned_data", {})  # the valid filters; an invalid value is ignored
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
            "rows": _alert_rows(request, page.object_list),
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
    note = forms.CharField(label=_("备注"), required=False, max_length=MAX_NOTE_LENGTH,
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
    for entry in history:  # shown, never saved
        entry.note = presenter.mask.text(entry.note)
    return {
        "row": _alert_row(alert, presenter.mask),
        "alert": alert,
        "detail_text": presenter.mask.text(alert_detail_text(alert)),
        "entities": [presenter.entity(e) for e in alert.entities],
        "evidence": json.dumps(presenter.mask_json(alert.evidence), ensure_ascii=False, indent=2)
        if alert.evidence else "",
        "history": history,
        "form": form,
        "actions": _triage_actions(alert, request.user),
    }


def _triage_actions(alert: Alert, user: Any) -> list[dict[str, Any]]:
    """The triage buttons, each enabled when the service would accept it."""

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
    user = cast(User, request.user)  # regulator_required: signed in
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
            changes["assignee"] = user
        try:
            alert_update(alert_id=alert.pk, by=user, note=note, **changes)
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
    row = pages.chain_row(chain)
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
    page = Paginator(pages.block_transactions(block), 100).get_page(request.GET.get("page"))
    transactions = list(page.object_list)
    masked = presenter.mask_json([json.loads(tx.body) for tx in transactions])
    verification = block.verification or {}
    return render(
        request,
        "supervision/block_detail.html",
        {
            "blk": block,
            "header": chain_selectors.block_header(block),
            "verification": verification,
            "unresolved": presenter.mask_json(verification.get("unresolved") or {}),
            "anchor": supervision_chain.anchor_status(chain_id=block.chain_id, height=block.height),
            "transactions": [
                {"tx": tx, "summary": _body_summary(body)}
                for tx, body in zip(transactions, masked, strict=True)
            ],
            "tx_page": page,
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
    presenter.learn(penetration.json_strings(body))
    fields = []
    for key, value in body.items():
        values = value if isinstance(value, list) else [value]
        if key in ENTITY_KEYS and all(isinstance(v, str) for v in values):
            fields.append({"key": key, "entities": [presenter.entity(v) for v in values]})
        elif key in ACCOUNT_KEYS and isinstance(value, str):
            fields.append({"key": key, "account": value})
        else:
            shown = presenter.mask_json(value)
            text = shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False)
            fields.append({"key": key, "text": text})
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


# --- penetrating supervision --------------------------------------------------------------------


class _FullView:
    """Stands in for a viewer allowed to see identifiers when asking the penetration selectors:
    the page needs the real ids to build links, and masks what it shows itself (`Presenter`)."""

    @staticmethod
    def has_perm(perm: str) -> bool:
        return True


_FULL_VIEW = _FullView()


@require_GET
@regulator_required
def entity_search(request: HttpRequest) -> HttpResponse:
    q = (request.GET.get("q") or "").strip()[:100]
    presenter = Presenter(request)
    rows: list[EntityLink] = []
    page = None
    if q:
        found = penetration.entity_search(q=q, viewer=request.user)
        page = Paginator(found, 50).get_page(request.GET.get("page"))
        rows = [presenter.entity(e.id, name=e.name, kind=e.kind) for e in page.object_list]
    return render(
        request,
        "supervision/entity_search.html",
        {"q": q, "search_q": q, "rows": rows, "page": page, "kind_labels": ENTITY_KIND_LABELS},
    )


@require_GET
@regulator_required
def entity_detail(request: HttpRequest, ref: str) -> HttpResponse:
    entity_id = entity_ref_decode(ref)
    try:
        depth = penetration.parse_depth(request.GET.get("depth") or "2")
    except DomainError:
        depth = 2
    try:
        detail = penetration.entity_detail(entity_id=entity_id, viewer=_FULL_VIEW)
        owners = penetration.entity_beneficial_owners(entity_id=entity_id, viewer=_FULL_VIEW)["owners"]
        graph = penetration.entity_graph(entity_id=entity_id, depth=depth, viewer=_FULL_VIEW)
    except NotFound as error:
        raise _not_found(error) from error
    related = pages.entity_related_parties(entity_id=entity_id)
    presenter = Presenter(request)
    presenter.learn([
        entity_id, *detail["group"], *(n["id"] for n in graph["nodes"]), *(o["id"] for o in owners),
        *(a["broker"] for a in detail["accounts"]), *(other for other, _ in related),
        *(n for o in owners for path in o.get("paths", []) for n in path["nodes"]),
        *(r.person for _, reasons in related for r in reasons if r.person),
        *([detail["controller"]["id"]] if detail["controller"] else []),
    ])
    controller = detail["controller"]
    return render(
        request,
        "supervision/entity_detail.html",
        {
            "me": presenter.entity(entity_id, name=detail["name"], kind=detail["kind"]),
            "detail": detail,
            "kind_label": ENTITY_KIND_LABELS.get(detail["kind"], detail["kind"]),
            "controller": presenter.entity(controller["id"], name=controller["name"]) if controller else None,
            "group": [presenter.entity(m) for m in detail["group"] if m != entity_id],
            "owners": _owner_rows(presenter, owners),
            "accounts": [{**a, "broker_link": presenter.entity(a["broker"])} for a in detail["accounts"]],
            "related": _related_rows(presenter, related),
            "roles": _entity_roles(presenter, entity_id),
            "depth": depth,
            "truncated": graph["truncated"],
            "graph_figure": _graph_figure(presenter, graph, root=entity_id) if graph["edges"] else None,
        },
    )


def _owner_rows(presenter: Presenter, owners: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "link": presenter.entity(o["id"], name=o["name"], kind=o["kind"]),
            "share": percent(o["share"]),
            "direct": percent(o["direct"]),
            "reasons": [OWNER_REASON_LABELS.get(r, r) for r in o["reasons"]],
            "paths": [
                {"nodes": [presenter.entity(n) for n in p["nodes"]], "product": percent(p["product"])}
                for p in o.get("paths", [])
            ],
        }
        for o in owners
    ]


def _related_rows(
    presenter: Presenter, related: list[tuple[str, list[pages.RelatedReason]]]
) -> list[dict[str, Any]]:
    def link(entity_id: str) -> EntityLink | None:
        return presenter.entity(entity_id) if entity_id else None

    return [
        {
            "link": presenter.entity(other),
            "reasons": [
                {"kind": r.kind, "person": link(r.person), "holder": link(r.holder), "issuer": link(r.issuer),
                 "share": percent(r.share) if r.share else ""}
                for r in reasons
            ],
        }
        for other, reasons in related
    ]


def _graph_figure(presenter: Presenter, graph: dict[str, Any], *, root: str) -> figures.Figure:
    nodes = []
    for n in graph["nodes"]:
        shown_id = presenter.id_text(n["id"])
        nodes.append(figures.GraphNode(
            id=n["id"],
            label=n["name"] or shown_id,
            kind=n["kind"],
            href=presenter.entity(n["id"], name=n["name"], kind=n["kind"]).href,
            hover=(n["name"], shown_id) if n["name"] else (shown_id,),
        ))
    edges = [figures.GraphEdge(e["source"], e["target"], Decimal(e["weight"])) for e in graph["edges"]]
    return figures.ownership_graph_figure(nodes, edges, root=root, kind_labels=_labels(ENTITY_KIND_LABELS))


def _entity_roles(presenter: Presenter, entity_id: str) -> list[dict[str, Any]]:
    rows = pages.entity_roles(entity_id=entity_id)
    presenter.learn([r["org_id"] for r in rows] + [r["person_id"] for r in rows])
    return [
        {
            "org": presenter.entity(r["org_id"]),
            "person": presenter.entity(r["person_id"]),
            "role": ROLE_LABELS.get(r["role"], r["role"]),
            "chain": r["chain_id"],
            "height": r["height"],
        }
        for r in rows
    ]
