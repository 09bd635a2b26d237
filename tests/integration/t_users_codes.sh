#!/bin/bash
# t_users_codes.sh - docs/exit-codes.md and docs/errors.md are true to the
# code (issue 16): the exit-code table lists exactly enum dv_exit (names and
# values), its "unused" sentence names exactly the codes 0..15 that are not
# used; the error-class table lists exactly enum dv_code with
# dv_code_name()'s names and dv_cli_exit_code()'s exit codes, and names
# DV_E_CODE_MAX's value; and the binary's exit codes agree for the classes
# the tests can provoke cheaply.
. "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$SRC" <<'PY' || fail "docs and code disagree (above)"
import re, sys
src = sys.argv[1]
read = lambda p: open(f"{src}/{p}").read()
bad = []
# enum dv_exit
cli = read("src/cli/cli.h")
body = re.search(r"enum dv_exit \{(.*?)\};", cli, re.S).group(1)
exits = {n: int(v) for n, v in re.findall(r"(DV_EXIT_\w+)\s*=\s*(\d+)", body)}
doc = read("docs/exit-codes.md")
rows = {n: int(v) for v, n in re.findall(r"^\| (\d+) \| `(DV_EXIT_\w+)` \|", doc, re.M)}
if rows != exits:
    bad.append(f"exit-codes.md table {sorted(rows.items())} != enum dv_exit {sorted(exits.items())}")
m = re.search(r"Codes ([0-9–, and]+) are unused", doc)
if not m:
    bad.append("exit-codes.md has no 'Codes ... are unused' sentence")
else:
    said = set()
    for part in re.split(r",|\band\b", m.group(1)):
        part = part.strip()
        if "–" in part:
            a, b = part.split("–"); said |= set(range(int(a), int(b) + 1))
        elif part:
            said.add(int(part))
    unused = set(range(0, 16)) - set(exits.values())
    if said != unused:
        bad.append(f"exit-codes.md says {sorted(said)} are unused; unused in 0..15: {sorted(unused)}")
# enum dv_code, in order
util = read("src/util/util.h")
body = re.search(r"enum dv_code \{(.*?)\};", util, re.S).group(1)
codes = re.findall(r"^\s*(DV_\w+)", body, re.M)
value = {c: i for i, c in enumerate(codes)}
names = dict(re.findall(r"\[(DV_\w+)\] = \"([a-z-]+)\"", read("src/util/err.c")))
# dv_cli_exit_code: cases fall through to the next return
out = read("src/cli/output.c")
sw = re.search(r"int dv_cli_exit_code\(enum dv_code code\)\n\{(.*?)\n\}", out, re.S).group(1)
mapping, pending, default = {}, [], None
for tok in re.findall(r"case (DV_\w+):|return (DV_EXIT_\w+);|(default):", sw):
    if tok[0]:
        pending.append(tok[0])
    elif tok[2]:
        pending.append("default")
    else:
        for c in pending:
            mapping[c] = exits[tok[1]]
        pending = []
errdoc = read("docs/errors.md")
erows = re.findall(r"^\| (\d+) \| `(DV_\w+)` \| `([a-z-]+)` \| .*? \| (\d+) \|$", errdoc, re.M)
seen = set()
for v, c, n, e in erows:
    seen.add(c)
    if value.get(c) != int(v):
        bad.append(f"errors.md: {c} is {v}, enum dv_code says {value.get(c)}")
    if names.get(c) != n:
        bad.append(f"errors.md: {c} is named {n}, dv_code_name says {names.get(c)}")
    want = mapping.get(c, mapping.get("default"))
    if want != int(e):
        bad.append(f"errors.md: {c} exits {e}, dv_cli_exit_code says {want}")
missing = set(codes) - seen - {"DV_E_CODE_MAX"}
if missing:
    bad.append(f"errors.md lacks {sorted(missing)}")
m = re.search(r"`DV_E_CODE_MAX` \((\d+)\)", errdoc)
if not m or int(m.group(1)) != value["DV_E_CODE_MAX"]:
    bad.append(f"errors.md names DV_E_CODE_MAX {m and m.group(1)}, it is {value['DV_E_CODE_MAX']}")
# the exit-codes table's classes column agrees with errors.md's Exit column
for v, classes in re.findall(r"^\| (\d+) \| `DV_EXIT_\w+` \| [^|]* \| ([^|]*) \|", doc, re.M):
    for cls in re.findall(r"`([a-z-]+)`", classes):
        c = next((k for k, x in names.items() if x == cls), None)
        if c is None:
            bad.append(f"exit-codes.md: class {cls} (exit {v}) is no dv_code_name")
        elif mapping.get(c, mapping.get("default")) != int(v):
            bad.append(f"exit-codes.md: class {cls} listed under exit {v}, dv_cli_exit_code says "
                       f"{mapping.get(c, mapping.get('default'))}")
for b in bad:
    print("MISMATCH:", b)
sys.exit(1 if bad else 0)
PY

# the binary: the codes the table promises, for cheap cases
R=$T/repo
init_repo "$R"
expect_exit 2 dv --repo "$R" list --bogus
expect_exit 10 dv --repo "$T/none" list
expect_exit 1 dv --repo "$R" show ffff
echo '{}' >"$T/not.json"
mkdir "$T/bad" && cp "$T/not.json" "$T/bad/config"
expect_exit 10 dv --repo "$T/bad" list
echo ok
