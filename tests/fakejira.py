"""A fake Jira (Cloud REST API v3 with basic auth, or Server/Data Center REST API v2 with a personal access token)
on a local port, for tests: issues with labels, comments, a To Do -> In Progress -> Done workflow, links, people,
and the JQL searches sitrep makes.

Every request body is checked against Atlassian's published OpenAPI description (tests/fixtures/jira, see its
NOTICE) with jsonschema, and against Jira's documented rules (the project, issue types and priorities exist, rich
text is Atlassian Document Format on Cloud and plain text on Server, labels hold no spaces): what the real API would
refuse gets a 400 in Jira's error shape and lands in `refused`."""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.fakehttp import Answer, JsonFake, Refused, problems

SPECS = Path(__file__).parent / "fixtures" / "jira"
EMAIL, TOKEN, PAT = "sitrep-bot@example.com", "ATATT3xFfGF0-jira-api-token", "NjQ2-jira-personal-access-token"
PROJECT = "OPS"
STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done"}
TRANSITIONS = [("11", "Start progress", "In Progress"), ("21", "Done", "Done"), ("31", "Back to to do", "To Do")]
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
ISSUE_TYPES = ("Task", "Bug", "Incident")


@cache
def spec() -> dict[str, Any]:
    return json.loads((SPECS / "platform-subset.openapiv3.json").read_text())  # type: ignore[no-any-return]


@cache
def search_jql() -> dict[str, Any]:
    return json.loads((SPECS / "search-jql.schema.json").read_text())  # type: ignore[no-any-return]


def request_schema(path: str, method: str) -> dict[str, Any]:
    document = spec()
    schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def adf_problems(doc: object) -> list[str]:
    """Atlassian Document Format, as far as sitrep writes it: a doc of paragraphs of text and hard breaks."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return ["not an ADF document (type doc, version 1)"]
    found = []
    for paragraph in doc.get("content") or []:
        if not isinstance(paragraph, dict) or paragraph.get("type") != "paragraph":
            found.append("top-level nodes must be block nodes such as paragraph")
            continue
        for node in paragraph.get("content") or []:
            if node.get("type") == "text" and (not isinstance(node.get("text"), str) or not node["text"]):
                found.append("text nodes need non-empty text")
            elif node.get("type") not in ("text", "hardBreak"):
                found.append(f"unexpected inline node {node.get('type')}")
    return found


class FakeJira(JsonFake):
    def __init__(self, *, cloud: bool = True) -> None:
        super().__init__()
        self.cloud = cloud
        self.prefix = "/rest/api/3" if cloud else "/rest/api/2"
        credentials = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
        self.authorization = f"Basic {credentials}" if cloud else f"Bearer {PAT}"
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.links: set[tuple[str, str, str]] = set()
        self.users: list[dict[str, Any]] = []
        self._next = 10000

    def start(self) -> FakeJira:
        super().start()
        return self

    # --- test helpers ---------------------------------------------------------------------------------

    def add_user(self, email: str, name: str) -> str:
        account = f"5b10ac8d82e05b22cc7d{len(self.users):04d}"
        self.users.append({"accountId": account, "emailAddress": email, "displayName": name, "name": name,
                           "key": name, "active": True, "accountType": "atlassian"})  # fmt: skip
        return account

    def set_status(self, key: str, status: str) -> None:
        """Move an issue by hand, as a person in Jira would."""
        with self._lock:
            self.issues[key]["fields"]["status"] = self._status(status)

    def issue(self, key: str) -> dict[str, Any]:
        with self._lock:
            return self.issues[key]

    def text_of(self, body: Any) -> str:
        if isinstance(body, str):
            return body
        return "\n".join("".join(n.get("text", "\n") if n.get("type") == "text" else "\n"
                                 for n in p.get("content") or []) for p in body.get("content") or [])  # fmt: skip

    # --- the API --------------------------------------------------------------------------------------

    def _status(self, name: str) -> dict[str, Any]:
        return {"name": name, "id": str(list(STATUSES).index(name) + 1),
                "statusCategory": {"key": STATUSES[name], "name": name}}  # fmt: skip

    def _refuse(self, found: list[str], status: int = 400) -> None:
        if found:
            raise Refused(status, {"errorMessages": found, "errors": {}})

    def _rich_text(self, value: Any, field: str) -> list[str]:
        if self.cloud:
            return [f"{field}: {p}" for p in adf_problems(value)]
        return [] if isinstance(value, str) else [f"{field}: must be a string on REST API v2"]

    def _issue_of(self, key: str) -> dict[str, Any]:
        issue = self.issues.get(key)
        if issue is None:
            raise Refused(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                                "errors": {}})  # fmt: skip
        return issue

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if not path.startswith(self.prefix + "/"):
            return 404, {"errorMessages": [f"no such API here (this Jira serves {self.prefix})"]}, {}
        rest = path[len(self.prefix):]
        spec_path = "/rest/api/3" + rest
        if method == "POST" and rest == "/issue":
            return self._create(body, spec_path)
        if method == "POST" and rest == "/issueLink":
            self._refuse(problems(request_schema("/rest/api/3/issueLink", "post"), body))
            inward, outward = body["inwardIssue"]["key"], body["outwardIssue"]["key"]
            self._issue_of(inward), self._issue_of(outward)
            if body["type"].get("name") not in ("Relates", "Blocks", "Cloners", "Duplicate"):
                raise Refused(404, {"errorMessages": [f"No issue link type with name '{body['type'].get('name')}'"]})
            self.links.add((body["type"]["name"], inward, outward))  # Jira keeps one link of a type per pair
            return 201, None, {}
        if method == "GET" and rest == "/user/search":
            wanted = (query.get("query") if self.cloud else query.get("username")) or [""]
            if not wanted[0]:
                raise Refused(400, {"errorMessages": ["query or username is required"]})
            found = [u for u in self.users if wanted[0].lower() in (u["emailAddress"].lower(), u["name"].lower())]
            shown = [{k: v for k, v in u.items() if k not in (("name", "key") if self.cloud else ("accountId",))}
                     for u in found]  # fmt: skip
            return 200, shown, {}
        if method == "POST" and rest in ("/search/jql", "/search"):
            return self._search(rest, body)
        match = re.fullmatch(r"/issue/([A-Z][A-Z0-9_]*-\d+)(/comment|/transitions)?", rest)
        if match is None:
            return 404, {"errorMessages": ["not found"]}, {}
        key, sub = match.group(1), match.group(2) or ""
        issue = self._issue_of(key)
        if method == "GET" and not sub:
            return 200, {"id": issue["id"], "key": key, "fields": {"status": issue["fields"]["status"]}}, {}
        if method == "PUT" and not sub:
            self._refuse(problems(request_schema("/rest/api/3/issue/{issueIdOrKey}", "put"), body))
            labels = issue["fields"]["labels"]
            for operation in (body.get("update") or {}).get("labels") or []:
                if "add" in operation and operation["add"] not in labels:
                    self._refuse([f"labels: '{operation['add']}' holds a space"] if " " in operation["add"] else [])
                    labels.append(operation["add"])
                if "remove" in operation and operation["remove"] in labels:
                    labels.remove(operation["remove"])
            return 204, None, {}
        if sub == "/comment" and method == "POST":
            self._refuse(problems(request_schema("/rest/api/3/issue/{issueIdOrKey}/comment", "post"), body)
                         + self._rich_text(body.get("body"), "body"))  # fmt: skip
            comment = {"id": str(self._bump()), "body": body["body"]}
            self.comments.setdefault(key, []).append(comment)
            return 201, comment, {}
        if sub == "/comment" and method == "GET":
            comments = list(reversed(self.comments.get(key, [])))
            return 200, {"comments": comments, "startAt": 0, "maxResults": 50, "total": len(comments)}, {}
        if sub == "/transitions" and method == "GET":
            current = issue["fields"]["status"]["name"]
            options = [{"id": tid, "name": name, "to": self._status(to)}
                       for tid, name, to in TRANSITIONS if to != current]  # fmt: skip
            return 200, {"transitions": options}, {}
        if sub == "/transitions" and method == "POST":
            self._refuse(problems(request_schema("/rest/api/3/issue/{issueIdOrKey}/transitions", "post"), body))
            current = issue["fields"]["status"]["name"]
            chosen = next((t for t in TRANSITIONS if t[0] == (body.get("transition") or {}).get("id")), None)
            if chosen is None or chosen[2] == current:
                raise Refused(400, {"errorMessages": ["Transition id is not valid for this issue."], "errors": {}})
            issue["fields"]["status"] = self._status(chosen[2])
            return 204, None, {}
        return 405, {"errorMessages": ["method not allowed"]}, {}

    def _bump(self) -> int:
        self._next += 1
        return self._next

    def _create(self, body: Any, spec_path: str) -> Answer:
        self._refuse(problems(request_schema(spec_path, "post"), body))
        fields = body.get("fields") or {}
        found = []
        if (fields.get("project") or {}).get("key") != PROJECT:
            found.append(f"project: no project with key {(fields.get('project') or {}).get('key')}")
        if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
            found.append("issuetype: specify a valid issue type")
        if not isinstance(fields.get("summary"), str) or not fields["summary"] or len(fields["summary"]) > 255:
            found.append("summary: required, at most 255 characters")
        if "priority" in fields and (fields["priority"] or {}).get("name") not in PRIORITIES:
            found.append("priority: specify a valid priority")
        if any(" " in label for label in fields.get("labels") or []):
            found.append("labels: a label cannot hold spaces")
        if "description" in fields:
            found += self._rich_text(fields["description"], "description")
        if "duedate" in fields and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(fields["duedate"])):
            found.append("duedate: use yyyy-MM-dd")
        if "assignee" in fields:
            person = fields["assignee"] or {}
            by = "accountId" if self.cloud else "name"
            if not any(u[by] == person.get(by) for u in self.users):
                found.append(f"assignee: no user with {by} {person.get(by)}")
        self._refuse(found)
        number = self._bump()
        key = f"{PROJECT}-{len(self.issues) + 1}"
        stored = {**fields, "labels": list(fields.get("labels") or []), "status": self._status("To Do")}
        self.issues[key] = {"id": str(number), "key": key, "fields": stored}
        return 201, {"id": str(number), "key": key, "self": f"{self.url}{self.prefix}/issue/{number}"}, {}

    def _search(self, rest: str, body: Any) -> Answer:
        if self.cloud and rest == "/search":
            return 410, {"errorMessages": ["This endpoint has been removed: use /rest/api/3/search/jql"]}, {}
        if rest == "/search/jql":
            self._refuse(problems(search_jql()["request"], body))
        else:
            self._refuse(problems(request_schema("/rest/api/3/search", "post"), body))
        jql = body["jql"]
        by_label = re.fullmatch(r'project = "([A-Z0-9_]+)" AND labels = "([^"]+)" ORDER BY created ASC', jql)
        by_keys = re.fullmatch(r"key in \(([A-Z0-9_, -]+)\)", jql)
        if by_label:
            found = [i for i in self.issues.values() if i["key"].startswith(by_label.group(1) + "-")
                     and by_label.group(2) in i["fields"]["labels"]]  # fmt: skip
        elif by_keys:
            keys = [k.strip() for k in by_keys.group(1).split(",")]
            found = [self.issues[k] for k in keys if k in self.issues]
        else:
            raise Refused(400, {"errorMessages": [f"The fake does not understand this JQL: {jql}"]})
        wanted = body.get("fields") or []
        page = body.get("maxResults") or 50
        start = int(body.get("nextPageToken") or 0) if rest == "/search/jql" else int(body.get("startAt") or 0)
        chunk = found[start:start + page]
        issues = [{"id": i["id"], "key": i["key"], "fields": {f: i["fields"].get(f) for f in wanted}} for i in chunk]
        if rest == "/search/jql":
            more = start + page < len(found)
            answer: dict[str, Any] = {"issues": issues, "isLast": not more}
            if more:
                answer["nextPageToken"] = str(start + page)
            return 200, answer, {}
        return 200, {"issues": issues, "startAt": start, "maxResults": page, "total": len(found)}, {}
