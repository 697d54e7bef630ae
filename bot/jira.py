"""Jira over HTTP (SPEC §13.4): the outbox's `jira` sender and the sync of action items.

Jira Cloud: REST API v3 with basic auth (email and API token), rich text in Atlassian Document Format, people by
accountId, search with `POST /rest/api/3/search/jql`. Server and Data Center: REST API v2 with a personal access
token (bearer), plain text, people by user name, search with `POST /rest/api/2/search`.

Jira has no idempotency key: a create retried after a crash first looks for the issue by its tracking label
(core.jira.tracking_label), a comment retried first looks for itself, a transition retried finds the issue done."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import httpx2
from pydantic import SecretStr
from slack_sdk import WebClient
from sqlmodel import Session

from bot.atlassian import Api
from core import jira
from core.jira import IssueState
from core.outbox import Delivery, DeliveryError, Sent

log = logging.getLogger("sitrep.jira")
SEARCH_PAGE = 100
LINK_TYPE = "Relates"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: a paragraph per block of lines, hard breaks within."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        content: list[dict[str, Any]] = []
        for number, line in enumerate(block.split("\n")):
            if number:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def plain(body: Any) -> str:
    """The text of a comment body (ADF or plain), whitespace dropped, to recognise a comment already made."""
    if isinstance(body, str):
        return "".join(body.split())
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for child in node.get("content") or []:
                walk(child)

    walk(body)
    return "".join("".join(found).split())


class JiraApi:
    """The calls sitrep makes; Cloud or Server/Data Center by the credentials given."""

    def __init__(self, *, url: str, email: str | None = None, token: SecretStr | None = None,
                 pat: SecretStr | None = None, http: httpx2.Client | None = None) -> None:  # fmt: skip
        self.url = url.rstrip("/")
        self.cloud = pat is None
        if pat is not None:
            auth = f"Bearer {pat.get_secret_value()}"
        else:
            if not email or token is None:
                raise ValueError("Jira Cloud needs JIRA_EMAIL and JIRA_API_TOKEN (or JIRA_PAT for Server)")
            auth = "Basic " + base64.b64encode(f"{email}:{token.get_secret_value()}".encode()).decode()
        self.api = Api(name="Jira", base=f"{self.url}/rest/api/{3 if self.cloud else 2}",
                       headers={"Authorization": auth}, http=http)  # fmt: skip

    def browse(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    def text(self, text: str) -> Any:
        return adf(text) if self.cloud else text

    def create(self, fields: dict[str, Any]) -> str:
        answer = self.api.call("POST", "/issue", json={"fields": fields})
        return str(answer["key"])

    def search(self, jql: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every issue the JQL finds, page by page."""
        if self.cloud:
            token = None
            while True:
                body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": SEARCH_PAGE}
                if token:
                    body["nextPageToken"] = token
                answer = self.api.call("POST", "/search/jql", json=body) or {}
                yield from answer.get("issues") or []
                token = answer.get("nextPageToken")
                if not token or answer.get("isLast"):
                    return
        start = 0
        while True:
            answer = self.api.call("POST", "/search", json={"jql": jql, "fields": fields, "startAt": start,
                                                            "maxResults": SEARCH_PAGE}) or {}  # fmt: skip
            issues = answer.get("issues") or []
            yield from issues
            start += len(issues)
            if not issues or start >= int(answer.get("total") or 0):
                return

    def find_by_label(self, project: str, label: str) -> str | None:
        for issue in self.search(f'project = "{project}" AND labels = "{label}" ORDER BY created ASC', ["summary"]):
            return str(issue["key"])
        return None

    def person(self, email: str) -> dict[str, str] | None:
        """The assignee field for a person, found by email; None when Jira knows nobody by it."""
        params = {"query": email} if self.cloud else {"username": email}
        for user in self.api.call("GET", "/user/search", params=params) or []:
            if self.cloud and user.get("accountId") and (user.get("emailAddress") in (None, "", email)):
                return {"accountId": str(user["accountId"])}
            if not self.cloud and user.get("name"):
                return {"name": str(user["name"])}
        return None

    def comment(self, key: str, text: str) -> None:
        self.api.call("POST", f"/issue/{key}/comment", json={"body": self.text(text)})

    def has_comment(self, key: str, text: str) -> bool:
        wanted = plain(text)
        answer = self.api.call("GET", f"/issue/{key}/comment", params={"orderBy": "-created", "maxResults": 50}) or {}
        return any(plain(comment.get("body")) == wanted for comment in answer.get("comments") or [])

    def transition(self, key: str, name: str) -> str:
        """Apply the transition called `name` (or leading to a status of that name); the status it leaves."""
        answer = self.api.call("GET", f"/issue/{key}/transitions") or {}
        options = answer.get("transitions") or []
        wanted = name.casefold()
        chosen = next((t for t in options if str(t.get("name", "")).casefold() == wanted), None) or next(
            (t for t in options if str((t.get("to") or {}).get("name", "")).casefold() == wanted), None
        )
        if chosen is None:
            status = self.status(key)
            if status.status.casefold() == wanted or status.done:
                return status.status  # done already (a retry, or closed by hand)
            names = ", ".join(sorted(str(t.get("name")) for t in options)) or "none"
            raise DeliveryError(f"Jira issue {key} has no transition {name!r} (available: {names})", permanent=True)
        self.api.call("POST", f"/issue/{key}/transitions", json={"transition": {"id": str(chosen["id"])}})
        return str((chosen.get("to") or {}).get("name") or name)

    def status(self, key: str) -> IssueState:
        issue = self.api.call("GET", f"/issue/{key}", params={"fields": "status"}) or {}
        return state_of(issue)

    def edit_labels(self, key: str, add: list[str], remove: list[str]) -> None:
        changes = [{"remove": label} for label in remove if label not in add] + [{"add": label} for label in add]
        self.api.call("PUT", f"/issue/{key}", json={"update": {"labels": changes}})

    def link(self, inward: str, outward: str) -> None:
        """`inward` relates to `outward` (the action item to its incident)."""
        self.api.call("POST", "/issueLink", json={"type": {"name": LINK_TYPE}, "inwardIssue": {"key": inward},
                                                   "outwardIssue": {"key": outward}})  # fmt: skip


def state_of(issue: dict[str, Any]) -> IssueState:
    status = (issue.get("fields") or {}).get("status") or {}
    category = (status.get("statusCategory") or {}).get("key")
    return IssueState(key=str(issue.get("key") or ""), status=str(status.get("name") or ""), done=category == "done")


Sessions = Callable[[], AbstractContextManager[Session]]


class JiraSender:
    """Sends the outbox's `jira` rows. Credentials come from the settings at send time, never from the row."""

    def __init__(self, api: JiraApi, *, project: str, issue_type: str, action_issue_type: str, tx: Sessions,
                 slack: WebClient | None = None, team_url: str | None = None) -> None:  # fmt: skip
        self.api = api
        self.project = project
        self.issue_type = issue_type
        self.action_issue_type = action_issue_type
        self.tx = tx
        self.client = slack
        self.team_url = team_url
        self._keys: dict[int, str] = {}

    def send(self, delivery: Delivery, now: datetime | None = None) -> Sent:
        operation = {
            jira.CREATE_ISSUE: self._create_issue, jira.LABELS: self._labels, jira.COMMENT: self._comment,
            jira.TRANSITION: self._transition, jira.CREATE_ITEM: self._create_item,
        }.get(delivery.operation)  # fmt: skip
        if operation is None:
            raise DeliveryError(f"unknown Jira operation {delivery.operation}", permanent=True)
        return operation(delivery)

    def _fields(self, payload: dict[str, Any], issue_type: str, description: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": issue_type},
            "summary": payload["summary"],
            "labels": payload["labels"],
            "description": self.api.text(description),
        }
        if payload.get("priority"):
            fields["priority"] = {"name": payload["priority"]}
        return fields

    def _incident_key(self, delivery: Delivery) -> str:
        """The incident's issue (an issue's key never changes, so it is kept once read)."""
        incident_id = delivery.incident_id or 0
        key = self._keys.get(incident_id)
        if key is None:
            with self.tx() as session:
                key = jira.incident_issue(session=session, incident_id=incident_id)
        if key is None:  # its create is an older row of the same incident: it goes first, so this is rare
            raise DeliveryError(f"the Jira issue of {delivery.incident_key} is not made yet")
        self._keys[incident_id] = key
        return key

    def _channel_link(self, delivery: Delivery) -> str:
        if not delivery.channel_id:
            return ""
        base = (self.team_url or "https://slack.com/").rstrip("/")
        name = f"#{delivery.channel_name}" if delivery.channel_name else delivery.channel_id
        return f"Slack channel {name}: {base}/archives/{delivery.channel_id}"

    def _create_issue(self, delivery: Delivery) -> Sent:
        payload = delivery.payload
        incident_id = delivery.incident_id or 0
        key, recorded = self._known_or_found(
            delivery, lambda session: jira.incident_issue(session=session, incident_id=incident_id),
            payload["labels"][-1],
        )
        if key is None:
            parts = (payload.get("description"), self._channel_link(delivery))
            description = "\n\n".join(part for part in parts if part)
            key = self.api.create(self._fields(payload, self.issue_type, description or payload["summary"]))
        if not recorded:
            with self.tx() as session:
                jira.record_issue(session=session, incident_id=incident_id, key=key)
            self._bookmark(delivery, key)  # once: an attempt that recorded the key went on to bookmark it
        return Sent(result={"link": key, "key": key},
                    notice=f":ticket: Jira issue <{self.api.browse(key)}|{key}> opened for *{delivery.incident_key}*.")

    def _known_or_found(
        self, delivery: Delivery, known: Callable[[Session], str | None], label: str
    ) -> tuple[str | None, bool]:
        """The issue this row made already, and whether its key is recorded: recorded, or (after a crash between
        create and record) found by its label."""
        with self.tx() as session:
            key = known(session)
        if key is not None:
            return key, True
        return (self.api.find_by_label(self.project, label) if delivery.attempts > 1 else None), False

    def _bookmark(self, delivery: Delivery, key: str) -> None:
        if self.client is None or not delivery.channel_id:
            return
        try:
            self.client.bookmarks_add(channel_id=delivery.channel_id, title=f"Jira {key}", type="link",
                                     link=self.api.browse(key), emoji=":ticket:")  # fmt: skip
        except Exception:  # noqa: BLE001 - the issue stands; the bookmark is a convenience
            log.warning("could not bookmark Jira %s in %s", key, delivery.channel_id, exc_info=True,
                        extra={"incident": delivery.incident_key})  # fmt: skip

    def _labels(self, delivery: Delivery) -> Sent:
        key = self._incident_key(delivery)
        self.api.edit_labels(key, list(delivery.payload.get("add") or []), list(delivery.payload.get("remove") or []))
        return Sent(result={"link": key})

    def _comment(self, delivery: Delivery) -> Sent:
        key = self._incident_key(delivery)
        text = str(delivery.payload["text"])
        if delivery.attempts == 1 or not self.api.has_comment(key, text):
            self.api.comment(key, text)
        return Sent(result={"link": key})

    def _transition(self, delivery: Delivery) -> Sent:
        key = self._incident_key(delivery)
        status = self.api.transition(key, str(delivery.payload["name"]))
        return Sent(result={"link": f"{key} ({status})"})

    def _create_item(self, delivery: Delivery) -> Sent:
        payload = delivery.payload
        incident_key = self._incident_key(delivery)
        item_id = int(payload["item_id"])
        key, recorded = self._known_or_found(
            delivery, lambda session: jira.item_issue(session=session, item_id=item_id), payload["labels"][-1]
        )
        if key is None:
            fields = self._fields(payload, self.action_issue_type, payload["description"])
            if payload.get("due"):
                fields["duedate"] = payload["due"]
            assignee = self._assignee(payload.get("owner"))
            if assignee:
                fields["assignee"] = assignee
            key = self.api.create(fields)
        if not recorded:  # at once: a failed link below must not make a second issue
            with self.tx() as session:
                jira.record_item_issue(session=session, item_id=item_id, key=key)
        self.api.link(key, incident_key)
        return Sent(result={"link": incident_key, "item": key})

    def _assignee(self, slack_user: str | None) -> dict[str, str] | None:
        """The owner's Jira account, by the email of their Slack profile; none when either is unknown."""
        if not slack_user or self.client is None:
            return None
        try:
            profile = self.client.users_info(user=slack_user)["user"].get("profile") or {}
        except Exception:  # noqa: BLE001 - an unassigned issue is better than none
            log.warning("could not read the Slack profile of %s", slack_user, exc_info=True)
            return None
        email = profile.get("email")
        return self.api.person(email) if email else None


class JiraSync:
    """Every 10 minutes: one JQL search for the open action items' issues; items done in Jira become done."""

    def __init__(self, api: JiraApi, *, tx: Sessions) -> None:
        self.api = api
        self.tx = tx

    def run(self) -> list[str]:
        """The keys of the items marked done."""
        with self.tx() as session:
            keys = jira.open_item_keys(session=session)
        if not keys:
            return []
        states: list[IssueState] = []
        for chunk in range(0, len(keys), 500):  # JQL's `key in (...)` stays well under the query length limits
            jql = f"key in ({', '.join(keys[chunk:chunk + 500])})"
            states += [state_of(issue) for issue in self.api.search(jql, ["status"])]
        with self.tx() as session:
            finished = jira.apply_sync(session=session, states=states)
            return [item.jira_key or "" for item in finished]
