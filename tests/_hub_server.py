"""A loopback HTTP server speaking the few Hub endpoints a push uses, recording what arrives.

No Hub-compatible server installs here and tests must not reach the internet, so this stands in
for huggingface.co: the real `huggingface_hub` client talks to it through `HF_ENDPOINT`.
Endpoints: POST /api/repos/create, POST /api/validate-yaml, POST /api/models/{repo}/preupload/{rev}
(every file "regular", so contents travel base64 in the commit), POST /api/models/{repo}/commit/{rev}
(NDJSON), and 404 `EntryNotFound` for anything else (downloads of files that do not exist).
"""

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    description: str
    create_pr: bool
    files: dict = field(default_factory=dict)  # path -> bytes

    def card_metadata(self) -> dict:
        """The YAML block at the top of the committed README.md."""
        text = self.files["README.md"].decode("utf-8")
        assert text.startswith("---\n"), "README.md has no YAML metadata block"
        return yaml.safe_load(text.split("---\n", 2)[1])


class HubState:
    def __init__(self):
        self.repos = {}  # repo_id -> creation payload
        self.validated = []  # README contents sent to /api/validate-yaml
        self.preuploaded = []  # paths asked about
        self.commits: list[Commit] = []
        self.authorizations = set()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    state: HubState  # set on the subclass made per server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, body=None, headers=None):
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})

    do_HEAD = do_GET

    def do_POST(self):
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        body = self._body()
        with self.state.lock:
            self.state.authorizations.add(self.headers.get("Authorization"))
        endpoint = f"http://{self.headers['Host']}"
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            with self.state.lock:
                exists = repo_id in self.state.repos
                self.state.repos.setdefault(repo_id, payload)
            if exists:
                return self._reply(
                    409, {"error": "You already created this model repo", "url": f"{endpoint}/{repo_id}"}
                )
            return self._reply(200, {"url": f"{endpoint}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            with self.state.lock:
                self.state.validated.append(json.loads(body)["content"])
            return self._reply(200, {"errors": [], "warnings": []})
        if path.startswith("/api/models/") and "/preupload/" in path:
            files = json.loads(body)["files"]
            with self.state.lock:
                self.state.preuploaded += [f["path"] for f in files]
            return self._reply(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if path.startswith("/api/models/") and "/commit/" in path:
            repo_id, revision = path[len("/api/models/") :].split("/commit/")
            if repo_id not in self.state.repos:
                return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            create_pr = query.get("create_pr") == ["1"]
            commit = Commit(repo_id, revision, header["summary"], header.get("description", ""), create_pr)
            for line in lines:
                if line["key"] == "file":
                    assert line["value"]["encoding"] == "base64"
                    commit.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            with self.state.lock:
                self.state.commits.append(commit)
                number = len(self.state.commits)
            oid = hashlib.sha1(body).hexdigest()
            reply = {"commitUrl": f"{endpoint}/{repo_id}/commit/{oid}", "commitOid": oid}
            if create_pr:
                reply["pullRequestUrl"] = f"{endpoint}/{repo_id}/discussions/{number}"
            return self._reply(200, reply)
        self._reply(404, {"error": f"unknown endpoint {path}"})


class HubServer:
    """`with HubServer() as hub:` serves on 127.0.0.1 (free port); `hub.endpoint`, `hub.state`."""

    def __init__(self):
        self.state = HubState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
