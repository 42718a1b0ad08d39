"""A running `flowmetal serve`, read through its HTTP API as if it were a store.

For tools that look into runs (`flowmetal.ide.workbench`, under the language
server) when the store is not theirs to open: the serve may be on another
machine. `RemoteStore` answers the reading half of `SQLiteStore`'s interface
(runs, the change feed, their events, their programs) from `GET /api/runs`, `GET
/api/runs/{id}`, `GET /api/runs/{id}/trace` and `GET /api/runs/{id}/sources`;
it changes nothing (runs are started and cancelled through the API by the
caller). It has no snapshots: a run's state is rebuilt by replaying its log.

A run's program is named, as in the store, by the content hashes of its
files; they are computed here from the texts the serve sends, which are
fetched once for each program (the code hash). Every failure is a
`StoreError` naming the serve and the problem. A serve is no more trusted than
a store file: a program whose file names are not plain relative names
(`flowmetal.lang.filenames`) is refused when it is read (`get_sources`), as the
store refuses it.
"""

from __future__ import annotations

import httpx

from flowmetal.lang import filenames
from flowmetal.runtime.program import source_hash
from flowmetal.runtime.store import Event, Run, StoreError
from flowmetal.server.bounds import CURSOR_HEADER

EVENT_FIELDS = ("seq", "time", "kind", "step", "line")


class RemoteStore:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.path = self.url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._programs: dict[str, dict[str, str]] = {}   # code hash -> file name -> source hash
        self._texts: dict[str, str] = {}                 # source hash -> text

    def close(self) -> None:
        self.client.close()

    def _get(self, path: str, params: dict | None = None, missing: str | None = None, header: str | None = None):
        """The JSON answer; with `header`, (the answer, that header's value or None)."""
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as error:
            raise StoreError(f"cannot reach flowmetal serve at {self.url}: {error}") from None
        if response.status_code == 404 and missing is not None:
            raise StoreError(missing)
        if response.status_code >= 400:
            try:
                message = response.json().get("error")
            except (ValueError, AttributeError):
                message = response.text[:200]
            raise StoreError(f"flowmetal serve at {self.url} answered {response.status_code}: {message}")
        try:
            answer = response.json()
        except ValueError:
            raise StoreError(f"flowmetal serve at {self.url} answered {path} with something not JSON") from None
        return answer if header is None else (answer, response.headers.get(header))

    # -- runs --

    def _run(self, data: dict) -> Run:
        code = data.get("code_hash") or ""
        program = self._programs.get(code)
        if program is None:
            sources = self._get(f"/api/runs/{data['id']}/sources", missing=f"no run `{data['id']}` at {self.url}")
            if not isinstance(sources, dict) or not all(isinstance(t, str) for t in sources.values()):
                raise StoreError(f"flowmetal serve at {self.url} answered the program of run `{data['id']}` "
                                 f"with something other than file names and texts")
            program = {}
            for name, text in sources.items():
                digest = source_hash(text)
                self._texts[digest] = text
                program[name] = digest
            self._programs[code] = program
        return Run(data["id"], data["entry"], list(data.get("args") or []), dict(program), code, data["status"],
                   data.get("result"), data.get("error"), data.get("created") or 0.0, data.get("updated") or 0.0,
                   None, None, None, int(data.get("last_seq") or 0) + 1, False, data.get("parent"))

    def get_run(self, run_id: str) -> Run | None:
        try:
            return self._run(self._get(f"/api/runs/{run_id}", missing=""))
        except StoreError as error:
            if str(error) == "":
                return None
            raise

    def find_run(self, run_id: str) -> Run:
        """A run by its whole id (the API takes no prefixes)."""
        return self._run(self._get(f"/api/runs/{run_id}", missing=f"no run `{run_id}` at {self.url}"))

    def list_runs(self, since: float | None = None, *, statuses=None, entries=None, last: int | None = None
                  ) -> list[Run]:
        """`Store.list_runs` over `GET /api/runs`: by status and the last started narrowed by the
        serve's store (`?status=`, `?last=`), by entries as recorded here."""
        query: dict = {}
        if statuses is not None:
            if not statuses:
                return []
            query["status"] = ",".join(statuses)
        if last is not None and entries is None and since is None:
            query["last"] = str(last)
        runs = [self._run(data) for data in self._get("/api/runs", query or None)]
        if since is not None:
            runs = [r for r in runs if r.updated >= since]
        if statuses is not None:  # (a serve of an older Flowmetal lists them all)
            runs = [r for r in runs if r.status in statuses]
        if entries is not None:
            runs = [r for r in runs if any(r.entry == e or ("/" not in e and r.entry.endswith("/" + e))
                                           for e in entries)]
        return runs[-last:] if last is not None else runs

    def has_unfinished_runs(self) -> bool:
        return False  # the serve drives its runs

    # -- what changed --

    def change_token(self) -> None:
        return None  # nothing tells cheaply whether anything changed: look every time

    def changes(self, after: int = 0) -> tuple[list[Run], int]:
        """`Store.changes` through `GET /api/runs?since=CURSOR`. The runs come without their
        programs (`get_run` reads a run's). A serve too old to give a cursor lists every run
        each time, and the cursor stays as it was."""
        listed, cursor = self._get("/api/runs", {"since": str(after)} if after else None, header=CURSOR_HEADER)
        runs = [Run(d["id"], d["entry"], list(d.get("args") or []), {}, d.get("code_hash") or "", d["status"],
                    d.get("result"), d.get("error"), d.get("created") or 0.0, d.get("updated") or 0.0, None, None,
                    None, int(d.get("last_seq") or 0) + 1, False, d.get("parent")) for d in listed]
        if cursor is None or not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
            return runs, after
        return runs, int(cursor)

    # -- logs and programs --

    def events(self, run_id: str, after: int = 0, until: int | None = None, kind: str | None = None) -> list[Event]:
        out = []
        for data in self._get(f"/api/runs/{run_id}/trace", {"after": str(after)},
                              missing=f"no run `{run_id}` at {self.url}"):
            event = Event(data["seq"], data["time"], data["kind"], data.get("step"),
                          {k: v for k, v in data.items() if k not in EVENT_FIELDS}, data.get("line"))
            if (until is None or event.seq <= until) and (kind is None or event.kind == kind):
                out.append(event)
        return out

    def get_sources(self, program: dict[str, str]) -> dict[str, str]:
        for name in program:
            why = filenames.problem(name)
            if why is not None:
                raise StoreError(f"flowmetal serve at {self.url}: a run's program has a bad file name "
                                 f"{filenames.shown(name)}: {why}; it is not read")
        try:
            return {name: self._texts[digest] for name, digest in program.items()}
        except KeyError:
            raise StoreError(f"the program of this run was not read from {self.url}") from None

    def snapshot(self, run_id: str) -> None:
        return None
