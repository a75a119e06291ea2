"""A small Hub-compatible HTTP server for the tests: the routes `huggingface_hub` 2.x and `transformers` call.

It speaks enough of the Hugging Face Hub API for `HfApi.create_repo` / `create_commit` / `upload_folder` /
`create_branch`, `hf_hub_download`, `snapshot_download` and `from_pretrained` to work against it:

- `GET /api/whoami-v2`, `GET /api/agent-harnesses`, `POST /api/repos/create`, `DELETE /api/repos/delete`
- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}` (model info with `siblings`)
- `GET /api/models/{repo}/tree/{rev}[/{path}]`, `POST /api/models/{repo}/paths-info/{rev}`
- `GET /api/models/{repo}/refs`, `GET /api/models/{repo}/commits/{rev}`, `POST /api/models/{repo}/branch/{branch}`
- `POST /api/models/{repo}/preupload/{rev}` (always "regular": contents come inline in the commit)
- `POST /api/models/{repo}/commit/{rev}` (ndjson: header, base64 `file`, `deletedFile`, `deletedFolder`)
- `POST /api/validate-yaml` (the README's front matter: YAML mapping, known fields well-typed, model-index shape)
- `HEAD` / `GET /{repo}/resolve/{rev}/{path}` with `X-Repo-Commit`, `ETag`, `Content-Length` (and `Range`)

Tokens map to user names; writes need a token owning the namespace, private repositories are invisible to
others. Blobs live in a storage folder; every request is recorded in `server.requests` and anything the server
does not know is recorded in `server.unhandled`, so a test fails loudly when a client starts calling a new route.

Run it standalone with `python tests/hub/hub_server.py --port 8000 --token hf_xxx=alice`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"
_ZERO_SHA = "0" * 40
# Field types the Hub's metadata validator enforces for a model card (a subset, enough to catch real mistakes).
_STRING_OR_LIST_FIELDS = ("language", "datasets", "base_model", "tags", "metrics")
_STRING_FIELDS = ("license", "library_name", "pipeline_tag")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's `oid` and `ETag`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    files: dict[str, str]  # path -> blob oid
    date: float


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)


class HubState:
    """Repositories, blobs on disk and users; shared by the handler threads under one lock."""

    def __init__(self, storage: Path, tokens: dict[str, str]):
        self.storage = Path(storage)
        (self.storage / "blobs").mkdir(parents=True, exist_ok=True)
        self.tokens = tokens
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()

    def put_blob(self, content: bytes) -> str:
        oid = git_blob_oid(content)
        (self.storage / "blobs" / oid).write_bytes(content)
        return oid

    def blob(self, oid: str) -> bytes:
        return (self.storage / "blobs" / oid).read_bytes()

    def create_repo(self, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_id, private)
        # Like the Hub, a new repository starts with one commit holding a .gitattributes file.
        attributes = self.put_blob(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
        commit = Commit(
            _new_oid(repo_id, None, "initial commit"), None, "initial commit", "", {".gitattributes": attributes}, 0
        )
        commit.date = time.time()
        repo.commits[commit.oid] = commit
        repo.branches["main"] = commit.oid
        self.repos[repo_id] = repo
        return repo


def _new_oid(*parts) -> str:
    return hashlib.sha1(json.dumps([*parts, time.time_ns()], default=str).encode()).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


class HubHandler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: tests read `server.requests` instead
        pass

    # -- plumbing ------------------------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[len("Bearer ") :]
        if token not in self.state.tokens:
            raise HubError(401, "Invalid credentials in Authorization header", "InvalidCredentials")
        return self.state.tokens[token]

    def _body(self) -> bytes:
        return self._raw_body

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, data, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(data).encode(), headers)

    def _dispatch(self, method: str):
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query)
        path = url.path
        self.server.requests.append((method, self.path))
        # Read the whole body up front, so an early error never leaves bytes on a kept-alive connection.
        self._raw_body = self._read_body()
        try:
            for route_method, pattern, handler in ROUTES:
                if route_method != method:
                    continue
                match = re.fullmatch(pattern, path)
                if match:
                    groups = {key: urllib.parse.unquote(value) for key, value in match.groupdict().items() if value}
                    with self.state.lock:
                        return handler(self, **groups)
            self.server.unhandled.append((method, self.path))
            raise HubError(404, f"no route for {method} {path}")
        except HubError as error:
            headers = {"X-Error-Code": error.error_code} if error.error_code else {}
            headers["X-Error-Message"] = error.message
            self._send(error.status, json.dumps({"error": error.message}).encode(), headers, head=method == "HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- helpers -------------------------------------------------------------------------------------------------
    def _repo(self, repo_id: str, write: bool = False) -> Repo:
        user = self._user()
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            # The Hub hides private repositories behind the same answer as missing ones.
            raise HubError(404 if user else 401, f"Repository {repo_id} not found", "RepoNotFound")
        if write and user != repo_id.split("/")[0]:
            raise HubError(403 if user else 401, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit(self, repo: Repo, rev: str) -> Commit:
        if rev in repo.branches:
            return repo.commits[repo.branches[rev]]
        matches = [oid for oid in repo.commits if oid.startswith(rev)] if len(rev) >= 7 else []
        if len(matches) == 1:
            return repo.commits[matches[0]]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _entry(self, commit: Commit, path: str) -> dict:
        oid = commit.files[path]
        return {"type": "file", "oid": oid, "size": len(self.state.blob(oid)), "path": path}

    def _tree(self, commit: Commit, prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        entries, folders = [], set()
        for path in sorted(commit.files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            if "/" in rest and not recursive:
                folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                continue
            if recursive:
                parts = path.split("/")[:-1]
                for depth in range(len(prefix.split("/")) if prefix else 0, len(parts)):
                    folders.add("/".join(parts[: depth + 1]))
            entries.append(self._entry(commit, path))
        folder_entries = [{"type": "directory", "oid": _ZERO_SHA, "size": 0, "path": path} for path in sorted(folders)]
        return folder_entries + entries

    # -- routes --------------------------------------------------------------------------------------------------
    def whoami(self):
        user = self._user()
        if user is None:
            raise HubError(401, "Invalid username or password.")
        token_info = {"displayName": "tests", "role": "write"}
        self._json(
            200, {"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {"accessToken": token_info}}
        )

    def agent_harnesses(self):
        # The client's best-effort agent-detection registry; an empty one detects nothing.
        self._json(200, {"standardEnvVars": [], "harnesses": {}})

    def create_repo(self):
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        body = json.loads(self._body() or b"{}")
        if body.get("type", "model") != "model":
            raise HubError(400, "this test server only hosts model repositories")
        namespace = body.get("organization") or user
        name = body.get("name") or ""
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
        if not re.fullmatch(r"[\w.-]{1,96}", name) or name.startswith(("-", ".")) or ".." in name:
            raise HubError(400, f"Invalid repository name {name!r}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.server.endpoint}/{repo_id}"
        if repo_id in self.state.repos:
            # `create_repo(exist_ok=True)` reads the 409 as "already there" and carries on.
            return self._json(409, {"error": "You already created this model repo", "url": url})
        private = body.get("private", body.get("visibility") == "private")
        self.state.create_repo(repo_id, bool(private))
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def delete_repo(self):
        body = json.loads(self._body() or b"{}")
        repo_id = f"{body.get('organization') or self._user()}/{body.get('name')}"
        self._repo(repo_id, write=True)
        del self.state.repos[repo_id]
        self._json(200, {})

    def model_info(self, repo: str, rev: str = "main"):
        repo_obj = self._repo(repo)
        commit = self._commit(repo_obj, rev)
        info = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
            "id": repo,
            "modelId": repo,
            "author": repo.split("/")[0],
            "sha": commit.oid,
            "private": repo_obj.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": "transformers",
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        }
        if "README.md" in commit.files:
            metadata = _front_matter(self.state.blob(commit.files["README.md"]).decode("utf-8", "replace"))
            if isinstance(metadata, dict):
                info["cardData"] = metadata
                info["tags"] = list(metadata.get("tags") or [])
                info["pipeline_tag"] = metadata.get("pipeline_tag")
        self._json(200, info)

    def tree(self, repo: str, rev: str, path: str = ""):
        commit = self._commit(self._repo(repo), rev)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        if path and path in commit.files:
            raise HubError(404, f"{path} is a file, not a folder", "EntryNotFound")
        entries = self._tree(commit, path, recursive)
        if path and not entries:
            raise HubError(404, f"Folder {path} not found", "EntryNotFound")
        self._json(200, entries)

    def paths_info(self, repo: str, rev: str):
        commit = self._commit(self._repo(repo), rev)
        raw = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(raw or b"{}").get("paths", [])
        else:
            paths = urllib.parse.parse_qs(raw.decode()).get("paths", [])
        entries = [self._entry(commit, path) for path in paths if path in commit.files]
        entries += [
            {"type": "directory", "oid": _ZERO_SHA, "size": 0, "path": path}
            for path in paths
            if path not in commit.files and any(name.startswith(path.rstrip("/") + "/") for name in commit.files)
        ]
        self._json(200, entries)

    def refs(self, repo: str):
        repo_obj = self._repo(repo)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in repo_obj.branches.items()
        ]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def commits(self, repo: str, rev: str):
        repo_obj = self._repo(repo)
        commit, history = self._commit(repo_obj, rev), []
        while commit is not None:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": repo.split("/")[0]}],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
                }
            )
            commit = repo_obj.commits.get(commit.parent) if commit.parent else None
        self._json(200, history)

    def create_branch(self, repo: str, branch: str):
        repo_obj = self._repo(repo, write=True)
        body = json.loads(self._body() or b"{}")
        if branch in repo_obj.branches:
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        start = self._commit(repo_obj, body.get("startingPoint") or "main")
        repo_obj.branches[branch] = start.oid
        self._json(200, {})

    def preupload(self, repo: str, rev: str):
        repo_obj = self._repo(repo, write=True)
        current = self._commit(repo_obj, rev).files
        files = json.loads(self._body())["files"]
        answer = [
            {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": current.get(item["path"])}
            for item in files
        ]
        self._json(200, {"files": answer, "commitOid": self._commit(repo_obj, rev).oid})

    def commit(self, repo: str, rev: str):
        repo_obj = self._repo(repo, write=True)
        if repo in self.server.reject_commits_to:  # fault injection for the tests
            raise HubError(500, "Internal Error - commit failed, please retry later")
        if "create_pr" in self.query:
            raise HubError(400, "this test server does not host pull requests")
        if rev not in repo_obj.branches:
            raise HubError(404, f"Invalid rev id: {rev}: commits go to an existing branch", "RevisionNotFound")
        parent = repo_obj.commits[repo_obj.branches[rev]]
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding for {path}")
                files[path] = self.state.put_blob(base64.b64decode(value["content"]))
                self.server.uploads.setdefault(repo, {})[path] = self.state.blob(files[path])
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                files = {name: oid for name, oid in files.items() if not name.startswith(path.rstrip("/") + "/")}
            else:
                raise HubError(400, f"this test server takes files inline only, not {key!r}")
        oid = _new_oid(repo, parent.oid, header.get("summary"))
        repo_obj.commits[oid] = Commit(
            oid, parent.oid, header.get("summary", ""), header.get("description", ""), files, time.time()
        )
        repo_obj.branches[rev] = oid
        url = f"{self.server.endpoint}/{repo}/commit/{oid}"
        self._json(200, {"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None})

    def validate_yaml(self):
        body = json.loads(self._body() or b"{}")
        errors, warnings = _validate_card_metadata(body.get("content", ""))
        self._json(400 if errors else 200, {"errors": errors, "warnings": warnings})

    def resolve(self, repo: str, rev: str, path: str):
        head = self.command == "HEAD"
        commit = self._commit(self._repo(repo), rev)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        oid = commit.files[path]
        content = self.state.blob(oid)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(len(content)),
        }
        status = 200
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range and not head:
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(content) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content = content[start : end + 1]
            headers["Content-Length"] = str(len(content))
            status = 206
        self._send(status, content, headers, head=head)


def _front_matter(text: str):
    match = re.match(r"^\s*---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if match is None:
        return None
    return yaml.safe_load(match.group(1))


def _validate_card_metadata(content: str) -> tuple[list[dict], list[dict]]:
    """The Hub's checks on a README's YAML front matter, the ones a model card can get wrong."""
    try:
        metadata = _front_matter(content)
    except yaml.YAMLError as error:
        return [{"message": f"YAML front matter is not valid YAML: {error}"}], []
    if metadata is None:
        return [], [{"message": "empty or missing yaml metadata in repo card"}]
    if not isinstance(metadata, dict):
        return [{"message": "YAML front matter must be a mapping"}], []
    errors = []
    for name in _STRING_FIELDS:
        if name in metadata and not isinstance(metadata[name], str):
            errors.append({"message": f'"{name}" must be a string'})
    for name in _STRING_OR_LIST_FIELDS:
        value = metadata.get(name)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))
        ):
            errors.append({"message": f'"{name}" must be a string or a list of strings'})
    model_index = metadata.get("model-index")
    if model_index is not None:
        errors += _validate_model_index(model_index)
    return errors, []


def _validate_model_index(model_index) -> list[dict]:
    if not isinstance(model_index, list) or not model_index:
        return [{"message": '"model-index" must be a non-empty list'}]
    errors = []
    for entry in model_index:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append({"message": '"model-index[].name" must be a string'})
            continue
        for result in entry.get("results") or []:
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append({"message": '"model-index[].results[].task.type" must be a string'})
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(key), str) for key in ("type", "name")):
                errors.append({"message": '"model-index[].results[].dataset" needs string "type" and "name"'})
            if not isinstance(metrics, list) or not metrics:
                errors.append({"message": '"model-index[].results[].metrics" must be a non-empty list'})
                continue
            for metric in metrics:
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str) or "value" not in metric:
                    errors.append({"message": '"model-index[].results[].metrics[]" needs "type" and "value"'})
    return errors


ROUTES = [
    ("GET", r"/api/whoami-v2", HubHandler.whoami),
    ("GET", r"/api/agent-harnesses", HubHandler.agent_harnesses),
    ("POST", r"/api/repos/create", HubHandler.create_repo),
    ("DELETE", r"/api/repos/delete", HubHandler.delete_repo),
    ("POST", r"/api/validate-yaml", HubHandler.validate_yaml),
    ("GET", rf"/api/models/{_REPO}", HubHandler.model_info),
    ("GET", rf"/api/models/{_REPO}/revision/{_REV}", HubHandler.model_info),
    ("GET", rf"/api/models/{_REPO}/tree/{_REV}(?:/(?P<path>.+))?", HubHandler.tree),
    ("POST", rf"/api/models/{_REPO}/paths-info/{_REV}", HubHandler.paths_info),
    ("GET", rf"/api/models/{_REPO}/refs", HubHandler.refs),
    ("GET", rf"/api/models/{_REPO}/commits/{_REV}", HubHandler.commits),
    ("POST", rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", HubHandler.create_branch),
    ("POST", rf"/api/models/{_REPO}/preupload/{_REV}", HubHandler.preupload),
    ("POST", rf"/api/models/{_REPO}/commit/{_REV}", HubHandler.commit),
    ("HEAD", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", HubHandler.resolve),
    ("GET", rf"/{_REPO}/resolve/{_REV}/(?P<path>.+)", HubHandler.resolve),
]


class HubServer(ThreadingHTTPServer):
    """The server: `HubServer(storage, {token: user}).start()` serves on 127.0.0.1 in a daemon thread."""

    daemon_threads = True

    def __init__(self, storage: str | Path, tokens: dict[str, str], port: int = 0):
        super().__init__(("127.0.0.1", port), HubHandler)
        self.state = HubState(Path(storage), tokens)
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.uploads: dict[str, dict[str, bytes]] = {}  # repo -> path -> bytes, every file ever committed
        self.reject_commits_to: set[str] = set()  # repositories whose commits fail with a 500 (fault injection)
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """The files of a repository at a revision."""
        repo = self.state.repos[repo_id]
        commit = repo.commits[repo.branches[rev]]
        return {path: self.state.blob(oid) for path, oid in commit.files.items()}

    def commit_count(self, repo_id: str) -> int:
        return len(self.state.repos[repo_id].commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--storage", default="hub_storage")
    parser.add_argument("--token", action="append", default=[], help="TOKEN=USER, repeatable")
    args = parser.parse_args()
    tokens = dict(item.split("=", 1) for item in args.token)
    server = HubServer(args.storage, tokens, args.port)
    print(f"serving on {server.endpoint}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
