#!/usr/bin/env bash
# diskvault operations benchmark: prune after a month of nights (issue 6) and
# EBS import against the local endpoint (issue 5). Run on demand; not in CI.
#
# usage: tests/bench/run-ops.sh [--parts prune,ebs] [--size MIB] [--nights N]
#                               [--prune-runs N] [--ebs-runs N] [--latency-ms MS]
#                               [--concurrency N] [--tools LIST] [--seed S]
#                               [--thresholds LIST] [--out FILE] [--no-docs]
#
#   --parts LIST      prune and/or ebs (default both)
#   --size MIB        disk size (default 1024)
#   --nights N        nightly backups before the prune (default 35)
#   --prune-runs N    forget+prune runs, each on a fresh copy of the repositories
#                     as they were after the last night (default 3)
#   --ebs-runs N      runs of every EBS import (default 3)
#   --latency-ms MS   latency the endpoint adds to every request (default 50)
#   --concurrency N   blocks in flight, diskvault and the reference (default 64)
#   --tools LIST      prune part: comma list out of diskvault,diskvault-all,restic,borg
#   --thresholds LIST also prune diskvault's (default-mode) repository with these
#                     --max-unused values, e.g. 0,20% (default none)
#   --out FILE        markdown file whose ops sections are (re)written
#                     (default docs/performance.md; other sections are kept)
#   --no-docs         only write the JSON results
#
# Night 0 backs up the image made by make-disk.sh; before every later night the
# files the previous night's mutate.sh created are deleted (debugfs) and
# mutate.sh runs with a per-night seed: ~2% of the disk rewritten in place and
# ~14 MB of new files per GiB. Snapshot times are 2026-01-01T03:00:00Z plus
# one day per night, passed to every tool (--time / --timestamp), so the
# retention policy (keep-daily 7, keep-weekly 4, keep-monthly 3) sees a month.
# Environment: DISKVAULT=/path/to/diskvault (else built in build-bench/),
# BENCH_WORK=dir (default tests/bench/work/; this script uses its ops/ subdir).
set -euo pipefail
export TZ=UTC LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_NAME=run-ops.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"
PARTS="prune,ebs"
SIZE_MIB=1024
NIGHTS=35
PRUNE_RUNS=3
EBS_RUNS=3
LATENCY_MS=50
CONC=64
TOOLS="diskvault,diskvault-all,restic,borg"
THRESHOLDS=""
SEED=1
OUT="$ROOT/docs/performance.md"
DOCS=1
bench_args 32 "--parts PARTS" "--size SIZE_MIB" "--nights NIGHTS" "--prune-runs PRUNE_RUNS" "--ebs-runs EBS_RUNS" \
  "--latency-ms LATENCY_MS" "--concurrency CONC" "--tools TOOLS" "--thresholds THRESHOLDS" "--seed SEED" \
  "--out OUT" "--no-docs DOCS=0" -- "$@"
[[ "$OUT" = /* ]] || OUT="$PWD/$OUT"
has_part() { in_list "$PARTS" "$1"; }
has_tool() { in_list "$TOOLS" "$1"; }
bench_work ops
log() { printf '[ops %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_require jq python3 openssl debugfs e2fsck

# ---------------------------------------------------------------- diskvault
DV="${DISKVAULT:-}"
DV_NOTE="DISKVAULT=$DV"
if [[ -z "$DV" ]]; then
  bench_build || { echo "run-ops.sh: building diskvault failed, see $WORK/build.log" >&2; exit 3; }
fi
DV_VERSION="$("$DV" --version 2>&1 | head -1)"
GIT_REV="$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-100 || true)"

# ---------------------------------------------------------------- measuring
RES="$WORK/results.jsonl"
: >"$RES"
SRC="$WORK/src"        # every tool backs up $SRC/disk.img
RUNDIR="$WORK/run"
CACHE="$WORK/cache"
rm -rf "$RUNDIR" "$CACHE" "$SRC"
mkdir -p "$SRC" "$RUNDIR" "$CACHE"
X="$RUNDIR/x"; mkdir -p "$X"
O="$RUNDIR/restore"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$CACHE/restic"
export BORG_PASSPHRASE="" BORG_CACHE_DIR="$CACHE/borg" BORG_CONFIG_DIR="$CACHE/borg-config" \
       BORG_SECURITY_DIR="$CACHE/borg-security" BORG_KEYS_DIR="$CACHE/borg-keys" \
       BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes \
       BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=YES
record() { jq -c -n "$@" >>"$RES"; }

errline() { grep -v '^\s*$' "$T_ERR" | tail -2 | tr '\n' ' ' | cut -c1-240; }
tjson() { # the last timed command as JSON fields
  jq -c -n --argjson wall "$T_WALL" --argjson user "$T_USER" --argjson sys "$T_SYS" \
    --argjson rss "$T_RSS" --argjson rchar "${T_RCHAR:-0}" --argjson wchar "${T_WCHAR:-0}" \
    --argjson load "$T_LOAD" '{wall:$wall,user:$user,sys:$sys,rss_kib:$rss,rchar:$rchar,wchar:$wchar,load1:$load}'
}
export R SRC O DV X T TR TB N KEEP ID

# ---------------------------------------------------------------- image
IMGDIR="$WORK/img"
mkdir -p "$IMGDIR"
BASE="$IMGDIR/base-$SIZE_MIB.img"
bench_image "$BASE" "$SIZE_MIB"
NIGHT_IMG="$IMGDIR/night.img"
ROOT_START=$(jq .root.start "$BASE.info.json")
new_image() { # fresh copy of the base image in $NIGHT_IMG
  rm -f "$NIGHT_IMG" "$NIGHT_IMG".*
  cp --sparse=always "$BASE" "$NIGHT_IMG"
  cp "$BASE.info.json" "$NIGHT_IMG.info.json"; cp "$BASE.manifest.tsv" "$NIGHT_IMG.manifest.tsv"
  ln -f "$NIGHT_IMG" "$SRC/disk.img"
}
# One night of use: yesterday's new files go (log rotation, downloads
# cleaned up), then mutate.sh rewrites ~2% in place and writes new files.
night_mutate() { # night
  local n="$1"
  if debugfs -R "stat /home/user/downloads" "$NIGHT_IMG?offset=$ROOT_START" 2>/dev/null | grep -q Inode; then
    printf '%s\n' "rm /var/log/syslog.new.log" "rm /home/user/notes-2026-01-02.txt" \
      "rm /home/user/downloads/update-1.tar.gz" "rm /home/user/downloads/update-2.tar.gz" \
      "rmdir /home/user/downloads" >"$X/rm.cmds"
    debugfs -w -f "$X/rm.cmds" "$NIGHT_IMG?offset=$ROOT_START" >"$X/rm.log" 2>&1
    ! grep -qiE 'error|could not|no such|not found' "$X/rm.log" || { cat "$X/rm.log" >&2; exit 1; }
  fi
  "$HERE/mutate.sh" "$NIGHT_IMG" "$SEED-night$n" >"$X/mutate.json" 2>/dev/null
}
e2ok() { e2fsck -fn "$1?offset=$ROOT_START" >/dev/null 2>&1 && echo e2fsck-ok || echo e2fsck-FAILED; }

# ================================================================ prune (issue 6)
KEEP_FLAGS="--keep-daily 7 --keep-weekly 4 --keep-monthly 3"
declare -A C_INIT C_NIGHT C_PRUNE C_CHECK C_RESTORE
C_INIT[diskvault]='"$DV" --repo "$R" init --no-encrypt'
C_NIGHT[diskvault]='"$DV" --repo "$R" backup "$SRC/disk.img" --host bench --time "$T" --json'
C_PRUNE[diskvault]='"$DV" --repo "$R" forget $KEEP --prune --json'
C_CHECK[diskvault]='for id in $("$DV" --repo "$R" list --json | jq -r ".snapshots[].id"); do "$DV" --repo "$R" verify "$id" || exit 1; done; "$DV" --repo "$R" check'
C_RESTORE[diskvault]='"$DV" --repo "$R" restore "$ID" "$O/disk.img"'
C_INIT[diskvault-all]="${C_INIT[diskvault]}"
C_NIGHT[diskvault-all]='"$DV" --repo "$R" backup --all-blocks "$SRC/disk.img" --host bench --time "$T" --json'
C_PRUNE[diskvault-all]="${C_PRUNE[diskvault]}"
C_CHECK[diskvault-all]="${C_CHECK[diskvault]}"
C_RESTORE[diskvault-all]="${C_RESTORE[diskvault]}"
C_INIT[restic]='restic -r "$R" init --repository-version 2'
C_NIGHT[restic]='restic -r "$R" backup --host bench --time "$TR" "$SRC/disk.img"'
C_PRUNE[restic]='restic -r "$R" forget $KEEP --prune'
C_CHECK[restic]='restic -r "$R" check --read-data'
C_RESTORE[restic]='restic -r "$R" restore "$ID" --target "$O"'
C_INIT[borg]='borg init --encryption none "$R"'
C_NIGHT[borg]='cd "$SRC" && borg create --compression zstd,3 --timestamp "$TB" "$R::night-$N" disk.img'
C_PRUNE[borg]='borg prune $KEEP "$R" && borg compact "$R"'
C_CHECK[borg]='borg check --verify-data "$R"'
C_RESTORE[borg]='cd "$O" && borg extract "$R::$ID"'
declare -A RESTORED
RESTORED[diskvault]="disk.img"; RESTORED[diskvault-all]="disk.img"
RESTORED[restic]="${SRC#/}/disk.img"; RESTORED[borg]="disk.img"
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
# prune variants: diskvault@N prunes diskvault's repository with --max-unused N
PRUNE_LIST=("${TOOL_LIST[@]}")
if has_tool diskvault && [[ -n "$THRESHOLDS" ]]; then
  IFS=, read -r -a TH_LIST <<<"$THRESHOLDS"
  for th in "${TH_LIST[@]}"; do
    PRUNE_LIST+=("diskvault@$th")
    C_PRUNE[diskvault@$th]='"$DV" --repo "$R" forget $KEEP --prune --max-unused '"$th"' --json'
  done
fi

night_time() { date -u -d "2026-01-01 03:00:00 UTC + $1 days" "+$2"; }

# kept_nights TOOL: the nights whose snapshots the repository $R holds, one a line
kept_nights() {
  case "$1" in
    diskvault*) "$DV" --repo "$R" list --json | jq -r '.snapshots[].time' ;;
    restic) restic -r "$R" snapshots --json | jq -r '.[].time' ;;
    borg) borg list --json "$R" | jq -r '.archives[].name' | sed 's/^night-//' ;;
  esac | python3 -c '
import sys, datetime
t0 = datetime.datetime(2026, 1, 1, 3, tzinfo=datetime.timezone.utc)
for l in sys.stdin:
    l = l.strip()
    if not l: continue
    if l.isdigit(): print(int(l)); continue
    t = datetime.datetime.fromisoformat(l[:19]).replace(tzinfo=datetime.timezone.utc)
    print(round((t - t0).total_seconds() / 86400))' | sort -n
}
# snap_id TOOL NIGHT: the id to restore that night's snapshot
snap_id() {
  local t; t=$(night_time "$2" %Y-%m-%dT%H:%M:%S)
  case "$1" in
    diskvault*) "$DV" --repo "$R" list --json | jq -r --arg t "${t}Z" '.snapshots[] | select(.time == $t) | .id' ;;
    restic) restic -r "$R" snapshots --json | jq -r --arg t "$t" '.[] | select(.time | startswith($t)) | .id' ;;
    borg) printf 'night-%02d\n' "$2" ;;
  esac | head -1
}

if has_part prune; then
  log "prune: $NIGHTS nights of a $SIZE_MIB MiB disk, tools $TOOLS"
  new_image
  declare -A NIGHT_SHA
  for tool in "${TOOL_LIST[@]}"; do
    R="$RUNDIR/repo-$tool"; rm -rf "$R"
    timed init "${C_INIT[$tool]}" || { log "$tool init failed: $(errline)"; exit 1; }
  done
  for ((n = 0; n < NIGHTS; n++)); do
    [[ $n -gt 0 ]] && night_mutate "$n"
    NIGHT_SHA[$n]=$(sha "$NIGHT_IMG")
    T=$(night_time "$n" %Y-%m-%dT%H:%M:%SZ); TR=$(night_time "$n" '%Y-%m-%d %H:%M:%S')
    TB=$(night_time "$n" %Y-%m-%dT%H:%M:%S); N=$(printf '%02d' "$n")
    mj='{}'; [[ $n -gt 0 ]] && mj="$(cat "$X/mutate.json")"
    record --argjson n "$n" --arg sha "${NIGHT_SHA[$n]}" --arg t "$T" --argjson m "$mj" \
      '{part:"prune",phase:"image",night:$n,sha:$sha,time:$t,mutate:$m}'
    for tool in "${TOOL_LIST[@]}"; do
      R="$RUNDIR/repo-$tool"; s0=$(dusb "$R")
      if timed "night-$tool" "${C_NIGHT[$tool]}"; then
        record --arg tool "$tool" --argjson n "$n" --argjson t "$(tjson)" --argjson s "$(dusb "$R")" --argjson s0 "$s0" \
          '{part:"prune",phase:"night",tool:$tool,night:$n,ok:true,stored:$s,added:($s-$s0)} + $t'
      else
        log "$tool night $n failed: $(errline)"; exit 1
      fi
    done
    log "night $n done ($(for tool in "${TOOL_LIST[@]}"; do printf '%s %s ' "$tool" "$(dusb "$RUNDIR/repo-$tool" | numfmt --to=iec)"; done))"
  done
  # the nights the policy keeps, computed independently of the tools
  EXPECTED=$(python3 - "$NIGHTS" <<'PY'
import datetime, sys
n = int(sys.argv[1])
t0 = datetime.datetime(2026, 1, 1, 3, tzinfo=datetime.timezone.utc)
times = [t0 + datetime.timedelta(days=i) for i in range(n)]
kept = set()
for key, cnt in [(lambda t: t.date(), 7), (lambda t: t.isocalendar()[:2], 4), (lambda t: (t.year, t.month), 3)]:
    last = None
    for t in sorted(times, reverse=True):
        if cnt > 0 and key(t) != last:
            kept.add(t); cnt -= 1; last = key(t)
for t in sorted(kept):
    print((t - t0).days)
PY
)
  OLDEST=$(head -1 <<<"$EXPECTED"); NEWEST=$(tail -1 <<<"$EXPECTED")
  record --argjson e "$(jq -R . <<<"$EXPECTED" | jq -s 'map(tonumber)')" '{part:"prune",phase:"expected",nights:$e}'
  # diskvault's default mode restores free space as zeros: its reference is a
  # restore of the same snapshot before the prune
  declare -A PRE_SHA
  for tool in "${TOOL_LIST[@]}"; do
    [[ "$tool" == diskvault ]] || continue
    R="$RUNDIR/repo-$tool"
    for nn in "$OLDEST" "$NEWEST"; do
      rm -rf "$O"; mkdir -p "$O"; ID=$(snap_id "$tool" "$nn")
      timed pre-restore "${C_RESTORE[$tool]}" || { log "pre-prune restore failed: $(errline)"; exit 1; }
      PRE_SHA[$nn]=$(sha "$O/disk.img")
    done
  done
  rm -rf "$O"
  cp -a "$CACHE" "$WORK/cache-after-nights"
  for ((run = 1; run <= PRUNE_RUNS; run++)); do
    for tool in "${PRUNE_LIST[@]}"; do
      R="$RUNDIR/prune-$tool"
      rm -rf "$R" "$CACHE"
      cp -a "$RUNDIR/repo-${tool%@*}" "$R"
      cp -a "$WORK/cache-after-nights" "$CACHE"
      s0=$(dusb "$R"); files0=$(find "$R" -type f | wc -l)
      KEEP="$KEEP_FLAGS"
      log "prune run $run: $tool"
      if timed "prune-$tool" "${C_PRUNE[$tool]}"; then
        tj="$(tjson)"; s1=$(dusb "$R"); files1=$(find "$R" -type f | wc -l)
        dj='{}'; [[ "$tool" == diskvault* ]] && dj="$(grep -E '^\s*\{' "$T_OUT" | tail -1 | jq -c '.prune // {}' 2>/dev/null || echo '{}')"
        kept="$(kept_nights "$tool" | tr '\n' ' ')"
        ok_kept=false; [[ "$kept" == "$(tr '\n' ' ' <<<"$EXPECTED")" ]] && ok_kept=true
        vj='{}'
        if [[ $run -eq 1 && "$tool" != *@* ]]; then
          # every kept snapshot must still be readable, and two restore right
          v_check=failed
          timed "check-$tool" "${C_CHECK[$tool]}" && v_check=ok
          cj="$(tjson)"
          res=()
          for nn in "$OLDEST" "$NEWEST"; do
            rm -rf "$O"; mkdir -p "$O"; ID=$(snap_id "$tool" "$nn")
            if [[ -z "$ID" ]]; then res+=("night $nn: missing"); continue; fi
            if timed "restore-$tool" "${C_RESTORE[$tool]}"; then
              f="$O/${RESTORED[$tool]}"; s=$(sha "$f")
              if [[ "$s" == "${NIGHT_SHA[$nn]}" ]]; then res+=("night $nn: sha256 = image")
              elif [[ "$tool" == diskvault && "$s" == "${PRE_SHA[$nn]}" ]]; then res+=("night $nn: sha256 = pre-prune restore, $(e2ok "$f")")
              else res+=("night $nn: MISMATCH"); fi
            else
              res+=("night $nn: restore failed: $(errline)")
            fi
          done
          rm -rf "$O"
          vj="$(jq -c -n --arg c "$v_check" --argjson cj "$cj" --arg r "$(printf '%s; ' "${res[@]}" | sed 's/; $//')" '{check:$c,check_time:$cj,restores:$r}')"
          log "$tool: check $v_check; ${res[*]}"
        fi
        record --arg tool "$tool" --argjson run "$run" --argjson t "$tj" --argjson s0 "$s0" --argjson s1 "$s1" \
          --argjson f0 "$files0" --argjson f1 "$files1" --argjson dj "$dj" --arg kept "$kept" --argjson okk "$ok_kept" \
          --argjson vj "$vj" \
          '{part:"prune",phase:"prune",tool:$tool,run:$run,ok:true,before:$s0,after:$s1,files_before:$f0,files_after:$f1,
            dv:$dj,kept:$kept,kept_as_expected:$okk,verify:$vj} + $t'
      else
        record --arg tool "$tool" --argjson run "$run" --arg e "$(errline)" '{part:"prune",phase:"prune",tool:$tool,run:$run,ok:false,error:$e}'
        log "$tool prune failed: $(errline)"
      fi
      rm -rf "$R"
    done
  done
  rm -rf "$WORK/cache-after-nights" "$CACHE"; mkdir -p "$CACHE"
  for tool in "${TOOL_LIST[@]}"; do rm -rf "$RUNDIR/repo-$tool"; done
fi

# ================================================================ EBS import (issue 5)
SRV_PORT=""
srv_start() { # DIR: a fresh endpoint with empty state and the latency set
  local d="$1"
  rm -rf "$d"; mkdir -p "$d"
  printf '{"latency_ms": %s}\n' "$LATENCY_MS" >"$d/faults.json"
  SRV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$ROOT/tests/servers/ebs-ec2-start.sh" "$d" "$SRV_PORT" >/dev/null
  # shellcheck disable=SC1091
  . "$d/env"
}
srv_stop() { "$ROOT/tests/servers/ebs-ec2-stop.sh" "$1" >/dev/null 2>&1 || true; }
srv_puts() { curl -sf "http://127.0.0.1:$SRV_PORT/__stats" | jq '."PutSnapshotBlock 201" // 0'; }
# ep_timing DIR: the endpoint's view of the last import in DIR/requests.log:
# PutSnapshotBlock 201s and seconds from StartSnapshot to CompleteSnapshot
ep_timing() {
  python3 - "$1/requests.log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
i = max(k for k, r in enumerate(rows) if r["action"] == "StartSnapshot" and r["status"] == 201)
g = rows[i:]
puts = [r["t"] for r in g if r["action"] == "PutSnapshotBlock" and r["status"] == 201]
comp = [r["t"] for r in g if r["action"] == "CompleteSnapshot" and r["status"] == 202]
print(json.dumps({"puts": len(puts), "upload_s": round(comp[0] - g[0]["t"], 3) if comp else None,
                  "describe_polls": sum(1 for r in g if r["action"] == "DescribeSnapshots")}))
PY
}
srv_reset() { curl -sf -X POST "http://127.0.0.1:$SRV_PORT/__reset-counters" >/dev/null; }
C_EBS_DV_FIRST='"$DV" --repo "$R" ebs-import latest --parent none --concurrency "$CONC" --json'
C_EBS_DV_INCR='"$DV" --repo "$R" ebs-import latest --parent auto --concurrency "$CONC" --json'
C_EBS_REF='/usr/bin/python3 "$HERE/ebs-reference.py" "$SRC/disk.img" --concurrency "$CONC"'
C_EBS_REF_NZ='/usr/bin/python3 "$HERE/ebs-reference.py" "$SRC/disk.img" --concurrency "$CONC" --skip-zero'
export CONC HERE
# changed_blocks A B: 512 KiB blocks that differ between two images
changed_blocks() {
  python3 - "$1" "$2" <<'PY'
import sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
n = 0
while True:
    x, y = a.read(524288), b.read(524288)
    if not x and not y:
        break
    n += x != y
print(n)
PY
}
nonzero_blocks() {
  python3 - "$1" <<'PY'
import sys
f = open(sys.argv[1], "rb"); n = 0; z = bytes(524288)
while True:
    x = f.read(524288)
    if not x:
        break
    n += x != z[:len(x)]
print(n)
PY
}

if has_part ebs; then
  /usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "run-ops.sh: python3-botocore is required" >&2; exit 3; }
  log "EBS import: $SIZE_MIB MiB disk, latency $LATENCY_MS ms, concurrency $CONC"
  new_image
  cp --sparse=always "$NIGHT_IMG" "$IMGDIR/ebs-base.img"
  night_mutate 1
  MUT_IMG="$IMGDIR/ebs-mut.img"; cp --sparse=always "$NIGHT_IMG" "$MUT_IMG"
  BASE_CHANGED=$(changed_blocks "$IMGDIR/ebs-base.img" "$MUT_IMG")
  NZ_BASE=$(nonzero_blocks "$IMGDIR/ebs-base.img"); NZ_MUT=$(nonzero_blocks "$MUT_IMG")
  record --argjson c "$BASE_CHANGED" --argjson a "$NZ_BASE" --argjson b "$NZ_MUT" --argjson m "$(cat "$X/mutate.json")" \
    --argjson blocks "$((SIZE_MIB * 2))" \
    '{part:"ebs",phase:"image",changed_blocks:$c,nonzero_base:$a,nonzero_mut:$b,blocks:$blocks,mutate:$m}'
  export DISKVAULT_STATE_DIR="$RUNDIR/dv-state"
  ebs_rec() { # name run extra-json
    record --arg name "$1" --argjson run "$2" --argjson t "$(tjson)" --argjson puts "$(srv_puts)" --argjson e "$3" \
      --argjson ep "$(ep_timing "$D")" \
      '{part:"ebs",phase:"import",name:$name,run:$run,ok:true,puts:$puts,extra:$e,endpoint:$ep} + $t'
  }
  for ((run = 1; run <= EBS_RUNS; run++)); do
    for mode in default all-blocks; do
      # diskvault: back up, import (full), back up the mutated disk, import (--parent auto)
      D="$RUNDIR/srv-dv"; srv_start "$D"
      R="$RUNDIR/repo-ebs"; rm -rf "$R" "$DISKVAULT_STATE_DIR"
      flag=""; [[ "$mode" == all-blocks ]] && flag="--all-blocks"
      "$DV" --repo "$R" init --no-encrypt -q
      ln -f "$IMGDIR/ebs-base.img" "$SRC/disk.img"
      "$DV" --repo "$R" backup $flag "$SRC/disk.img" -q >/dev/null
      log "EBS run $run: diskvault ($mode) first import"
      srv_reset
      if timed ebs-dv-first "$C_EBS_DV_FIRST"; then
        ebs_rec "dv-$mode-first" "$run" "$(grep -E '^\s*\{' "$T_OUT" | tail -1)"
      else
        record --arg n "dv-$mode-first" --argjson run "$run" --arg e "$(errline)" '{part:"ebs",phase:"import",name:$n,run:$run,ok:false,error:$e}'
      fi
      ln -f "$MUT_IMG" "$SRC/disk.img"
      "$DV" --repo "$R" backup $flag "$SRC/disk.img" -q >/dev/null
      log "EBS run $run: diskvault ($mode) incremental import"
      srv_reset
      if timed ebs-dv-incr "$C_EBS_DV_INCR"; then
        ebs_rec "dv-$mode-incr" "$run" "$(grep -E '^\s*\{' "$T_OUT" | tail -1)"
      else
        record --arg n "dv-$mode-incr" --argjson run "$run" --arg e "$(errline)" '{part:"ebs",phase:"import",name:$n,run:$run,ok:false,error:$e}'
      fi
      srv_stop "$D"; rm -rf "$D" "$R"
    done
    # the reference: every block of the image, fixed concurrency (a fresh
    # endpoint each time, so every block is new to it as for diskvault)
    for v in ref ref-nz; do
      for img in base mut; do
        [[ "$v" == ref-nz && "$img" == mut ]] && continue
        D="$RUNDIR/srv-ref"; srv_start "$D"
        ln -f "$IMGDIR/ebs-$img.img" "$SRC/disk.img"
        log "EBS run $run: reference $v ($img image)"
        tmpl="$C_EBS_REF"; [[ "$v" == ref-nz ]] && tmpl="$C_EBS_REF_NZ"
        if timed "ebs-$v" "$tmpl"; then
          ebs_rec "$v-$img" "$run" "$(tail -1 "$T_OUT")"
        else
          record --arg n "$v-$img" --argjson run "$run" --arg e "$(errline)" '{part:"ebs",phase:"import",name:$n,run:$run,ok:false,error:$e}'
        fi
        srv_stop "$D"; rm -rf "$D"
      done
    done
  done
  rm -f "$IMGDIR/ebs-base.img" "$MUT_IMG"
fi

# ---------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -1 || true; }
cmds_json() {
  local t
  for t in "${TOOL_LIST[@]}"; do
    jq -n --arg t "$t" --arg i "${C_INIT[$t]}" --arg n "${C_NIGHT[$t]}" --arg p "${C_PRUNE[$t]}" \
      --arg c "${C_CHECK[$t]}" --arg r "${C_RESTORE[$t]}" '{($t): {init:$i,night:$n,prune:$p,check:$c,restore:$r}}'
  done | jq -s 'add // {}'
}
jq -n --arg start "$START_TS" --arg finish "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg args "$ARGS_ORIG" \
  --arg load0 "$START_LOAD" --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" --arg nproc "$(nproc)" \
  --arg uptime_end "$(uptime)" \
  --arg v_dv "$DV_VERSION" --arg dv_note "$DV_NOTE" --arg git_rev "$GIT_REV" \
  --arg v_restic "$(ver restic version)" --arg v_borg "$(ver borg --version)" \
  --arg v_boto "$(/usr/bin/python3 -c 'import botocore; print(botocore.__version__)' 2>/dev/null || echo n/a)" \
  --argjson size_mib "$SIZE_MIB" --argjson nights "$NIGHTS" --argjson prune_runs "$PRUNE_RUNS" \
  --argjson ebs_runs "$EBS_RUNS" --argjson latency "$LATENCY_MS" --argjson conc "$CONC" --arg seed "$SEED" \
  --arg keep "$KEEP_FLAGS" --arg parts "$PARTS" --arg tools "$TOOLS" --argjson cmds "$(cmds_json)" \
  --arg thresholds "$THRESHOLDS" \
  --arg ebs_dv_first "$C_EBS_DV_FIRST" --arg ebs_dv_incr "$C_EBS_DV_INCR" --arg ebs_ref "$C_EBS_REF" --arg ebs_ref_nz "$C_EBS_REF_NZ" \
  '{start:$start,end:$finish,args:$args,load_start:$load0,load_end:$load1,nproc:$nproc,uptime_end:$uptime_end,
    versions:{diskvault:$v_dv,restic:$v_restic,borg:$v_borg,botocore:$v_boto},dv_note:$dv_note,git_rev:$git_rev,
    size_mib:$size_mib,nights:$nights,prune_runs:$prune_runs,ebs_runs:$ebs_runs,latency_ms:$latency,concurrency:$conc,
    seed:$seed,keep:$keep,parts:($parts|split(",")),tools:($tools|split(",")),cmds:$cmds,
    thresholds:($thresholds|split(",")|map(select(. != ""))),
    ebs_cmds:{dv_first:$ebs_dv_first,dv_incr:$ebs_dv_incr,ref:$ebs_ref,ref_nz:$ebs_ref_nz}}' >"$WORK/meta.json"
cp "$RES" "$WORK/results-$(date -u +%Y%m%dT%H%M%S).jsonl"
if [[ $DOCS -eq 1 ]]; then
  python3 "$HERE/report-ops.py" "$WORK/meta.json" "$RES" "$HERE/notes-ops.md" "$OUT"
  log "updated $OUT"
fi
rm -rf "$RUNDIR" "$SRC" "$NIGHT_IMG" "$NIGHT_IMG".*
log "done"
