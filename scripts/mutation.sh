#!/usr/bin/env bash
# Mutation testing with mutmut 3, area by area (slow: not part of scripts/test.sh).
#
#   ./scripts/mutation.sh                 every area: crypto, storage, service, ratelimit
#   ./scripts/mutation.sh service         one area (or several: crypto storage)
#   MUTATION_WORKERS=1 ./scripts/mutation.sh crypto
#
# The areas (which files, which functions, which tests) are [tool.mutation] in
# pyproject.toml. Each runs in .mutmut/AREA/ (git-ignored): the packages and tests are
# linked there, mutmut copies them into .mutmut/AREA/mutants/ and mutates only that
# copy, so nothing in the checkout is written. A mutant runs only the selected tests
# that reach the mutated function (mutmut records which tests call what).
#
# Prints, per area and in total: killed / mutants and the score, then every mutant
# not killed with its diff. Afterwards, in .mutmut/AREA/: `../../.venv/bin/mutmut show
# NAME` for one mutant, `../../.venv/bin/mutmut browse` for all; mutmut.log is the
# run's own output, summary.json the figures printed here.
#
# Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 like scripts/test.sh
# (or TEST_DATABASE_URL / TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[[ -x .venv/bin/python ]] || ./scripts/bootstrap.sh
py=.venv/bin/python
cluster_url=${TEST_DATABASE_URL:-}

# The tool, pinned in pyproject.toml, installed into .venv when missing or different.
spec=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutation"]["tool"])')
if [[ "$("$py" -c 'import importlib.metadata as m; print("mutmut==" + m.version("mutmut"))' 2>/dev/null || true)" != "$spec" ]]; then
  echo "== installing $spec into .venv"
  "$py" -m pip install --quiet --disable-pip-version-check "$spec"
fi

# The helper below: `areas` lists them, `prepare AREA` writes .mutmut/AREA/, `names AREA`
# prints the mutant-name globs to run, `report AREA SECONDS` scores one area and
# `total AREA...` adds the areas up.
helper() {
  "$py" - "$@" <<'PY'
import fnmatch
import json
import os
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path.cwd()
PYPROJECT = ROOT / "pyproject.toml"
CONFIG = tomllib.loads(PYPROJECT.read_text())["tool"]["mutation"]
AREAS = CONFIG["areas"]
KILLED = {1, 3, 24, -24, 152, 255, 36, 37}  # failed tests, timeouts (mutmut counts them so)
STATUS = {None: "not checked", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          -11: "segfault", -9: "segfault", 2: "interrupted"}


def work(area: str) -> Path:
    return ROOT / ".mutmut" / area


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def without_mutation_tables(text: str) -> str:
    """pyproject.toml minus its [tool.mutation...] tables (mutmut gets its own below)."""
    kept, skipping = [], False
    for line in text.splitlines():
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            skipping = header.group(1) == "tool.mutation" or header.group(1).startswith(
                ("tool.mutation.", "tool.mutmut")
            )
        if not skipping:
            kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


def prepare(area: str) -> None:
    spec = AREAS[area]
    settings = dict(CONFIG["mutmut"])
    settings["only_mutate"] = spec["only_mutate"]
    settings["pytest_add_cli_args_test_selection"] = spec["tests"]
    for test in spec.get("deselect", []):
        settings["pytest_add_cli_args"] = [*settings["pytest_add_cli_args"], "--deselect", test]
    missing = [t for t in spec["tests"] if not (ROOT / t.split("::")[0]).exists()]
    if missing:
        sys.exit(f"area {area}: no such test path {missing}")
    here = work(area)
    here.mkdir(parents=True, exist_ok=True)
    for name in [*settings["source_paths"], *settings.get("also_copy", []), "tests"]:
        link = here / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ROOT / name)
    table = "\n".join(f"{key} = {toml_value(value)}" for key, value in settings.items())
    (here / "pyproject.toml").write_text(
        without_mutation_tables(PYPROJECT.read_text())
        + f"\n# Written by scripts/mutation.sh for the area {area!r}.\n[tool.mutmut]\n{table}\n"
    )


def function_globs(area: str) -> list[str]:
    """mutmut's names for the area's functions: module.x_func / module.xǁClassǁmethod."""
    globs = []
    for module, functions in AREAS[area].get("functions", {}).items():
        for function in functions:
            cls, _, name = function.rpartition(".")
            mangled = f"xǁ{cls}ǁ{name}" if cls else f"x_{name}"
            globs.append(f"{module}.{mangled}__mutmut_*")
    return globs


def results(area: str) -> dict[str, int | None]:
    """Every mutant of the area and its exit code, from mutmut's .meta files."""
    patterns = AREAS[area]["only_mutate"]
    globs = function_globs(area)
    found: dict[str, int | None] = {}
    mutants = work(area) / "mutants"
    for meta in sorted(mutants.rglob("*.py.meta")):
        source = str(meta.relative_to(mutants))[: -len(".meta")]
        if not any(fnmatch.fnmatch(source, p) for p in patterns):
            continue
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if not globs or any(fnmatch.fnmatch(name, g) for g in globs):
                found[name] = code
    return found


def report(area: str, seconds: str) -> None:
    found = results(area)
    killed = sum(1 for code in found.values() if code in KILLED)
    total = len(found)
    score = 100.0 * killed / total if total else 0.0
    left = {n: STATUS.get(c, f"exit {c}") for n, c in found.items() if c not in KILLED}
    os.chdir(work(area))  # mutmut reads its configuration from the working directory
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    print(f"\n== {area}: {killed}/{total} mutants killed, score {score:.1f}% ({seconds} s)")
    for name, status in sorted(left.items()):
        print(f"-- {status}: {name}")
        try:
            diff = get_diff_for_mutant(name)
        except Exception as exc:  # a diff is a courtesy; the verdict stands without it
            diff = f"   (no diff: {exc})"
        print("\n".join(f"   {line}" for line in diff.splitlines()[2:] if line[:1] in "+-@"))
    summary = {"area": area, "killed": killed, "total": total, "score": round(score, 1),
               "seconds": int(seconds), "not_killed": left}
    (work(area) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def total(areas: list[str]) -> None:
    rows = [json.loads((work(a) / "summary.json").read_text()) for a in areas]
    print("\n== per area")
    for r in rows:
        print(f"   {r['area']:<10} {r['killed']:>5}/{r['total']:<5} {r['score']:5.1f}%  {r['seconds']:>5} s")
    killed, all_ = sum(r["killed"] for r in rows), sum(r["total"] for r in rows)
    score = 100.0 * killed / all_ if all_ else 0.0
    seconds = sum(r["seconds"] for r in rows)
    print(f"   {'total':<10} {killed:>5}/{all_:<5} {score:5.1f}%  {seconds:>5} s")


def scratch(action: str, name: str) -> None:
    """Create or drop the run's own maintenance database (see the comment at its use)."""
    import asyncio

    import asyncpg

    from storage.dsn import with_database

    cluster = os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"

    async def run() -> None:
        con = await asyncpg.connect(cluster, timeout=10)
        try:
            if action == "create":
                await con.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
                print(with_database(cluster, name))
            else:
                await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await con.close()

    asyncio.run(run())


command, *args = sys.argv[1:]
if command == "scratch":
    scratch(args[0], args[1])
elif command == "areas":
    print(" ".join(AREAS))
elif command == "prepare":
    prepare(args[0])
elif command == "names":
    for glob in function_globs(args[0]):
        print(glob)
elif command == "report":
    report(args[0], args[1])
elif command == "total":
    total(args)
PY
}

read -r -a known <<<"$(helper areas)"
areas=("$@")
[[ ${#areas[@]} -gt 0 ]] || areas=("${known[@]}")
for area in "${areas[@]}"; do
  [[ " ${known[*]} " == *" $area "* ]] || { echo "unknown area '$area' (areas: ${known[*]})" >&2; exit 2; }
done

# The tests reach the cluster through storage code that is being mutated: a mutant of
# storage.dsn.with_database can point a fixture's "temporary database" back at the
# maintenance database it was derived from and apply the schema there. So the run
# derives its temporary databases from a maintenance database of its own, dropped at
# the end, instead of the cluster's `postgres`.
scratch_db="scca_mutation_$(date +%s)_$$"
TEST_DATABASE_URL=$(helper scratch create "$scratch_db")
export TEST_DATABASE_URL
trap 'TEST_DATABASE_URL=${cluster_url:-} helper scratch drop "$scratch_db" || true' EXIT

workers=${MUTATION_WORKERS:-$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutation"]["max_children"])')}

for area in "${areas[@]}"; do
  work=".mutmut/$area"
  echo "== $area: mutmut in $work ($workers workers)"
  rm -rf "$work/mutants"  # a fresh run: results cached under older tests would stand
  helper prepare "$area"
  mapfile -t names < <(helper names "$area")
  started=$SECONDS
  status=0
  (cd "$work" && "$root/.venv/bin/mutmut" run --max-children "$workers" "${names[@]}") \
    >"$work/mutmut.log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    tr '\r' '\n' <"$work/mutmut.log" | tail -40 >&2
    echo "mutmut failed on area $area (exit $status); whole log: $work/mutmut.log" >&2
    exit "$status"
  fi
  helper report "$area" "$((SECONDS - started))"
done

helper total "${areas[@]}"
