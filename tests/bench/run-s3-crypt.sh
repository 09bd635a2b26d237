#!/usr/bin/env bash
# diskvault benchmark, part 2: the cost of encryption (issue 7) and S3
# repositories on a loopback Swift s3api endpoint (issue 4), on the image
# make-disk.sh generates. Run on demand; not part of CI.
#
# usage: tests/bench/run-s3-crypt.sh [--size MIB] [--runs N] [--out FILE]
#                                    [--seed S] [--parts LIST] [--keep]
#                                    [--crypt-sizes LIST]
#
#   --size MIB    disk size (default 1024)
#   --crypt-sizes LIST  comma list of disk sizes in MiB for the encryption part,
#                 one table each (default: --size); the fixed cost of opening
#                 an encrypted repository weighs less on a larger disk
#   --runs N      repetitions, interleaved; medians are reported (default 3)
#   --crypt-runs N  repetitions of the encryption part (default: --runs)
#   --out FILE    report to update (default docs/performance.md): the sections
#                 between the "s3-crypt" markers are replaced (or inserted
#                 before "## Commands" / "## Analysis"); the rest is kept
#   --seed S      image seed (default 1)
#   --parts LIST  comma list out of: crypt,s3 (default both)
#   --keep        keep the images in the work dir
#
# Environment: DISKVAULT=/path/to/diskvault (otherwise built in build-bench/),
# BENCH_WORK=dir (default tests/bench/work/, gitignored), S3_PORT=P (first of
# four free loopback ports for the Swift server; default: picked at random).
# run.sh rewrites the whole report: run this script after it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_NAME=run-s3-crypt.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"
SIZE_MIB=1024
RUNS=3
CRYPT_RUNS=""
CRYPT_SIZES=""
OUT="$ROOT/docs/performance.md"
SEED=1
PARTS="crypt,s3"
KEEP=0
bench_args 25 "--size SIZE_MIB" "--crypt-sizes CRYPT_SIZES" "--runs RUNS" "--crypt-runs CRYPT_RUNS" "--out OUT" "--seed SEED" \
  "--parts PARTS" "--keep KEEP=1" -- "$@"
[[ "$OUT" = /* ]] || OUT="$PWD/$OUT"
CRYPT_RUNS="${CRYPT_RUNS:-$RUNS}"
CRYPT_SIZES="${CRYPT_SIZES:-$SIZE_MIB}"
bench_work
NPROC="$(nproc)"
log() { printf '[bench-s3c %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has_part() { in_list "$PARTS" "$1"; }
AWS=/usr/bin/aws   # Debian's awscli; another `aws` may come first on PATH

bench_require jq python3 openssl sfdisk debugfs mkfs.fat mcopy e2fsck fsck.fat
if has_part s3 && [[ ! -x $AWS ]]; then
  apt-get install -y --no-install-recommends awscli >"$WORK/apt.log" 2>&1 ||
    { echo "run-s3-crypt.sh: /usr/bin/aws (Debian awscli) is required" >&2; exit 3; }
fi

# ---------------------------------------------------------------- diskvault
DV="${DISKVAULT:-}"
if [[ -z "$DV" ]]; then
  bench_build || { echo "run-s3-crypt.sh: build failed, see $WORK/build.log" >&2; exit 3; }
else
  DV_NOTE="DISKVAULT=$DV"
fi
[[ -x "$DV" ]] || { echo "run-s3-crypt.sh: not executable: $DV" >&2; exit 3; }
DV_VERSION="$("$DV" --version 2>&1 | head -1)"
GIT_REV="$(git -C "$ROOT" log -1 --format='%h' 2>/dev/null || true)"
GIT_DIRTY="$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -vc '^??' || true)"

# ---------------------------------------------------------------- images
# Same generator, stamps and file names as run.sh (the images are shared).
IMGDIR="$WORK/img"
mkdir -p "$IMGDIR"
GEN_SECONDS=0
# use_size MIB: BASE and MUT become that size's images (generated once and
# shared with run.sh), the reference restores are made again for them.
CUR_SIZE=""
E2FSCK_ALL=""
use_size() {
  local t0
  [[ "$CUR_SIZE" == "$1" ]] && return 0
  t0=$(date +%s)
  CUR_SIZE="$1"
  BASE="$IMGDIR/base-$1.img"
  MUT="$IMGDIR/mut-$1.img"
  bench_image "$BASE" "$1" 60
  bench_mutated "$BASE" "$MUT"
  GEN_SECONDS=$(( GEN_SECONDS + $(date +%s) - t0 ))
  REF_FIRST=""; REF_LATEST=""; E2FSCK="not run"
}

# ---------------------------------------------------------------- helpers
RES="$WORK/s3c-results.jsonl"
: >"$RES"
RUNDIR="$WORK/s3c-run"
SRC="$WORK/s3c-src"
rm -rf "$RUNDIR" "$SRC"
mkdir -p "$RUNDIR" "$SRC"
PWFILE="$WORK/s3c-password"
( umask 077; printf 'correct horse battery staple\n' >"$PWFILE" )
export DISKVAULT_STATE_DIR="$RUNDIR/state" DISKVAULT_CACHE_DIR="$RUNDIR/cache"

# CPU seconds (user+sys) the Swift server processes have used so far.
S3DIR="$WORK/s3c-swift"
server_cpu() {
  local t=0 f pid
  for f in "$S3DIR"/run/*.pid; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    [[ -r /proc/$pid/stat ]] || continue
    t=$(( t + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}') ))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# run_timed NAME TEMPLATE: timed (lib.sh), the templates seeing the
# variables R O SRC DV PWFILE AWS BUCKET S3EP X; also sets T_SRV (server CPU
# seconds during the command) and logs a failure.
BUCKET="" S3EP=""
export R O SRC DV PWFILE AWS BUCKET S3EP X
run_timed() {
  local name="$1" c0 rc=0
  c0=$(server_cpu)
  timed "$@" || rc=$?
  T_SRV=$(awk -v a="$c0" -v b="$(server_cpu)" 'BEGIN {printf "%.2f", b - a}')
  if [[ $rc -ne 0 ]]; then
    log "$name failed (exit $rc): $(grep -v '^\s*$' "$T_ERR" | head -2 | tr '\n' ' ' | cut -c1-240)"
  fi
  return $rc
}
stats_json() { [[ -s "$1" ]] && tail -1 "$1" | jq -c . || echo '{}'; }
# rec PART CASE PHASE RUN EXTRA-JSON: one measurement of the last run_timed
rec() {
  local extra="${5:-}"
  [[ -n "$extra" ]] || extra='{}'
  jq -c -n --arg part "$1" --arg case "$2" --arg phase "$3" --argjson run "$4" --argjson extra "$extra" \
    --argjson wall "$T_WALL" --argjson user "$T_USER" --argjson sys "$T_SYS" --argjson rss "$T_RSS" \
    --argjson load "$T_LOAD" --argjson srv "$T_SRV" --argjson size "$CUR_SIZE" \
    '{part:$part,case:$case,phase:$phase,run:$run,size_mib:$size,ok:true,wall:$wall,user:$user,sys:$sys,rss_kib:$rss,load1:$load,server_cpu:$srv} + $extra' >>"$RES"
}
recfail() { jq -c -n --arg part "$1" --arg case "$2" --arg phase "$3" --argjson run "$4" --arg err "$5" \
  --argjson size "$CUR_SIZE" '{part:$part,case:$case,phase:$phase,run:$run,size_mib:$size,ok:false,error:$err}' >>"$RES"; }

# The reference images: restore of the first (base) and latest (mutated)
# snapshot of a plain local repository; every other restore must equal them.
declare -A C
C[init-plain]='"$DV" --repo "$R" init --no-encrypt'
C[init-enc]='"$DV" --repo "$R" --password-file "$PWFILE" init --encrypt'
C[first-plain]='"$DV" --repo "$R" backup "$SRC/disk.img" --json'
C[first-enc]='"$DV" --repo "$R" --password-file "$PWFILE" backup "$SRC/disk.img" --json'
C[incr-plain]='"$DV" --repo "$R" backup "$SRC/disk.img" --json'
C[incr-enc]='"$DV" --repo "$R" --password-file "$PWFILE" backup "$SRC/disk.img" --json'
C[restore-plain]='"$DV" --repo "$R" restore latest "$O/disk.img" --json'
C[restore-enc]='"$DV" --repo "$R" --password-file "$PWFILE" restore latest "$O/disk.img" --json'
C[unlock-plain]='"$DV" --repo "$R" list'
C[unlock-enc]='"$DV" --repo "$R" --password-file "$PWFILE" list'

# verify FILE SHA: "equal" or a failure word; e2fsck of the ext4 once per run
verify() {
  local s; s="$(sha "$1")"
  if [[ "$s" != "$2" ]]; then echo "MISMATCH"; return; fi
  echo "equal"
}

# ---------------------------------------------------------------- encryption
REF_FIRST=""; REF_LATEST=""; E2FSCK="not run"
reference_restores() {
  [[ -n "$REF_LATEST" ]] && return 0
  log "reference restores (plain local repository)"
  X="$RUNDIR/x-ref"; R="$RUNDIR/repo-ref"; O="$RUNDIR/o-ref"
  rm -rf "$X" "$R" "$O"; mkdir -p "$X" "$O"
  point_src "$BASE"
  run_timed init "${C[init-plain]}" && run_timed first "${C[first-plain]}"
  run_timed rf '"$DV" --repo "$R" restore latest "$O/disk.img"'
  REF_FIRST="$(sha "$O/disk.img")"; rm -f "$O/disk.img"
  point_src "$MUT"
  run_timed incr "${C[incr-plain]}" && run_timed rl '"$DV" --repo "$R" restore latest "$O/disk.img"'
  REF_LATEST="$(sha "$O/disk.img")"
  # the used-blocks restore passes run.sh's check, so the reference is sound
  E2FSCK="$(bench_check_used_blocks "$O/disk.img" "$MUT")"
  E2FSCK_ALL="${E2FSCK_ALL:+$E2FSCK_ALL, }$CUR_SIZE MiB: $E2FSCK"
  rm -rf "$X" "$R" "$O"
}

crypt_case() { # mode(plain|enc) run
  local m="$1" run="$2" s0 s1 s2 v
  R="$RUNDIR/repo-$m"; O="$RUNDIR/o-$m"; X="$RUNDIR/x-$m"
  rm -rf "$R" "$O" "$X"; mkdir -p "$O" "$X"
  point_src "$BASE"
  run_timed init "${C[init-$m]}" || { recfail crypt "$m" init "$run" "init failed"; return; }
  # init tunes scrypt to ~0.5 s of CPU at that moment: record what it chose
  rec crypt "$m" init "$run" "$(jq -c '{kdf: (.encryption.keys[0] // null), kdf_name: (.encryption.kdf // null)} | del(.kdf.wrapped, .kdf.salt)' "$R/config" 2>/dev/null || echo '{}')"
  s0=$(dusb "$R")
  log "crypt $m run $run: first backup"
  run_timed first "${C[first-$m]}" || { recfail crypt "$m" first "$run" "first backup failed"; return; }
  s1=$(dusb "$R")
  rec crypt "$m" first "$run" "$(jq -c -n --argjson s "$s1" --argjson a "$((s1 - s0))" --argjson j "$(dv_json)" '{stored:$s,added:$a,dv:$j}')"
  point_src "$MUT"
  log "crypt $m run $run: incremental backup"
  run_timed incr "${C[incr-$m]}" || { recfail crypt "$m" incr "$run" "incremental failed"; return; }
  s2=$(dusb "$R")
  rec crypt "$m" incr "$run" "$(jq -c -n --argjson s "$s2" --argjson a "$((s2 - s1))" --argjson j "$(dv_json)" '{stored:$s,added:$a,dv:$j}')"
  log "crypt $m run $run: restore"
  run_timed restore "${C[restore-$m]}" || { recfail crypt "$m" restore "$run" "restore failed"; return; }
  v="$(verify "$O/disk.img" "$REF_LATEST")"
  rec crypt "$m" restore "$run" "$(jq -c -n --arg v "$v" --argjson j "$(dv_json)" '{verify:$v,dv:$j}')"
  # the fixed cost of opening the repository (scrypt for the encrypted one)
  run_timed unlock "${C[unlock-$m]}" && rec crypt "$m" unlock "$run"
  rm -rf "$R" "$O" "$X"
}

# ---------------------------------------------------------------- S3
S3_STARTED=0
cleanup() {
  if [[ $S3_STARTED -eq 1 ]]; then "$ROOT/tests/servers/swift-s3-stop.sh" "$S3DIR" || true; fi
  rm -rf "$RUNDIR" "$SRC"
}
trap cleanup EXIT

free_port_base() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000, 4)
    socks = []
    try:
        for p in range(base, base + 4):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks: s.close()
    print(base); break
PY
}

s3_start() {
  rm -rf "$S3DIR"
  local port="${S3_PORT:-$(free_port_base)}"
  log "starting the Swift s3api server on 127.0.0.1:$port"
  S3_STARTED=1
  "$ROOT/tests/servers/swift-s3-start.sh" "$S3DIR" "$port" >/dev/null
  # shellcheck disable=SC1091
  . "$S3DIR/env"
  S3EP=$AWS_ENDPOINT_URL
}
awscli() { "$AWS" --endpoint-url "$S3EP" --region us-east-1 "$@"; }
new_bucket() { BUCKET="bench-$1-$RANDOM$RANDOM"; awscli s3api create-bucket --bucket "$BUCKET" >/dev/null; }
drop_bucket() { awscli s3 rb --force "s3://$BUCKET" >/dev/null 2>&1 || log "could not remove bucket $BUCKET"; }
bucket_bytes() { # total bytes of the objects under s3://$BUCKET/$1
  awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1" --query 'sum(Contents[].Size)' --output text
}
bucket_count() {
  awscli s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1" --query 'length(Contents)' --output text
}

C[s3-init]='"$DV" --repo "s3://$BUCKET/repo" init --no-encrypt'
C[s3-first]='"$DV" --repo "s3://$BUCKET/repo" backup "$SRC/disk.img" --json'
C[s3-incr]='"$DV" --repo "s3://$BUCKET/repo" backup "$SRC/disk.img" --json'
C[s3-restore]='"$DV" --repo "s3://$BUCKET/repo" restore "$SNAP" "$O/disk.img" --json'
C[s3-copy]='"$DV" copy --from "$R" --to "s3://$BUCKET/copy" --json'
C[aws-cp]='"$AWS" --endpoint-url "$S3EP" --region us-east-1 s3 cp --recursive --only-show-errors "$R" "s3://$BUCKET/awscp"'

# backup to a local repository vs the same backup straight to S3, then the
# restores from S3 of the first snapshot (the repository holds nothing else
# then) and of the latest; diskvault's request and byte counts from its stats
s3_backup_case() { # where(local|s3) run
  local w="$1" run="$2" s0 s1 s2 st j snap1
  R="$RUNDIR/repo-l"; O="$RUNDIR/o-$w"; X="$RUNDIR/x-$w"
  rm -rf "$R" "$O" "$X" "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"; mkdir -p "$O" "$X"
  point_src "$BASE"
  if [[ $w == local ]]; then
    run_timed init "${C[init-plain]}" && s0=$(dusb "$R") &&
      run_timed first "${C[first-plain]}" || { recfail s3 local first "$run" "failed"; return; }
    s1=$(dusb "$R")
    rec s3 local first "$run" "$(jq -c -n --argjson s "$s1" --argjson j "$(dv_json)" '{stored:$s,dv:$j}')"
    point_src "$MUT"
    run_timed incr "${C[incr-plain]}" || { recfail s3 local incr "$run" "failed"; return; }
    s2=$(dusb "$R")
    rec s3 local incr "$run" "$(jq -c -n --argjson s "$s2" --argjson a "$((s2 - s1))" --argjson j "$(dv_json)" '{stored:$s,added:$a,dv:$j}')"
    rm -rf "$R" "$O" "$X"
    return
  fi
  new_bucket "b$run"
  export DISKVAULT_S3_STATS_FILE="$X/stats.init"
  run_timed init "${C[s3-init]}" || { recfail s3 s3 first "$run" "init failed"; drop_bucket; return; }
  export DISKVAULT_S3_STATS_FILE="$X/stats.first"
  log "s3 run $run: first backup to S3"
  run_timed first "${C[s3-first]}" || { recfail s3 s3 first "$run" "failed"; drop_bucket; return; }
  j="$(dv_json)"; snap1=$(jq -r .snapshot <<<"$j")
  s1=$(bucket_bytes repo/)
  rec s3 s3 first "$run" "$(jq -c -n --argjson s "$s1" --argjson n "$(bucket_count repo/)" --argjson j "$j" \
    --argjson st "$(stats_json "$X/stats.first")" '{stored:$s,objects:$n,dv:$j,s3:$st}')"
  log "s3 run $run: restore of the first snapshot from S3"
  rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"
  export DISKVAULT_S3_STATS_FILE="$X/stats.restore1"
  if SNAP="$snap1" run_timed restore1 "${C[s3-restore]/\$SNAP/$snap1}"; then
    rec s3 s3 restore-first "$run" "$(jq -c -n --argjson s "$s1" --arg v "$(verify "$O/disk.img" "$REF_FIRST")" \
      --argjson j "$(dv_json)" --argjson st "$(stats_json "$X/stats.restore1")" '{stored:$s,verify:$v,dv:$j,s3:$st}')"
  else recfail s3 s3 restore-first "$run" "failed"; fi
  rm -f "$O/disk.img"
  point_src "$MUT"
  export DISKVAULT_S3_STATS_FILE="$X/stats.incr"
  log "s3 run $run: incremental backup to S3"
  run_timed incr "${C[s3-incr]}" || { recfail s3 s3 incr "$run" "failed"; drop_bucket; return; }
  j="$(dv_json)"
  s2=$(bucket_bytes repo/)
  rec s3 s3 incr "$run" "$(jq -c -n --argjson s "$s2" --argjson a "$((s2 - s1))" --argjson j "$j" \
    --argjson st "$(stats_json "$X/stats.incr")" '{stored:$s,added:$a,dv:$j,s3:$st}')"
  log "s3 run $run: restore of the latest snapshot from S3"
  rm -rf "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"
  export DISKVAULT_S3_STATS_FILE="$X/stats.restore2"
  if run_timed restore2 "${C[s3-restore]/\$SNAP/latest}"; then
    rec s3 s3 restore-latest "$run" "$(jq -c -n --argjson s "$s2" --arg v "$(verify "$O/disk.img" "$REF_LATEST")" \
      --argjson j "$(dv_json)" --argjson st "$(stats_json "$X/stats.restore2")" '{stored:$s,verify:$v,dv:$j,s3:$st}')"
  else recfail s3 s3 restore-latest "$run" "failed"; fi
  unset DISKVAULT_S3_STATS_FILE
  drop_bucket
  rm -rf "$O" "$X"
}

# the repository to upload: a local repository holding both snapshots
COPY_REPO="$RUNDIR/repo-copysrc"
make_copy_repo() {
  X="$RUNDIR/x-copysrc"; R="$COPY_REPO"; O="$RUNDIR/none"
  rm -rf "$X" "$R"; mkdir -p "$X"
  point_src "$BASE"; run_timed init "${C[init-plain]}"; run_timed first "${C[first-plain]}"
  point_src "$MUT"; run_timed incr "${C[incr-plain]}"
  COPY_BYTES=$(find "$R" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
  COPY_FILES=$(find "$R" -type f | wc -l)
  rm -rf "$X"
}

s3_copy_case() { # tool(diskvault|awscli) run
  local t="$1" run="$2" pre n b
  R="$COPY_REPO"; O="$RUNDIR/none"; X="$RUNDIR/x-copy-$t"
  rm -rf "$X" "$DISKVAULT_STATE_DIR" "$DISKVAULT_CACHE_DIR"; mkdir -p "$X"
  new_bucket "c$run"
  log "s3 run $run: upload of the repository with $t"
  if [[ $t == diskvault ]]; then
    export DISKVAULT_S3_STATS_FILE="$X/stats"
    pre=copy; run_timed copy "${C[s3-copy]}" || { recfail s3 copy-$t upload "$run" "failed"; drop_bucket; return; }
    unset DISKVAULT_S3_STATS_FILE
  else
    pre=awscp; run_timed copy "${C[aws-cp]}" || { recfail s3 copy-$t upload "$run" "failed"; drop_bucket; return; }
  fi
  b=$(bucket_bytes "$pre/"); n=$(bucket_count "$pre/")
  rec s3 "copy-$t" upload "$run" "$(jq -c -n --argjson b "$b" --argjson n "$n" --argjson lb "$COPY_BYTES" --argjson lf "$COPY_FILES" \
    --argjson st "$(stats_json "$X/stats")" '{bucket_bytes:$b,objects:$n,local_bytes:$lb,local_files:$lf,s3:$st}')"
  drop_bucket
  rm -rf "$X"
}

# ---------------------------------------------------------------- runs
if has_part crypt; then
  for size in ${CRYPT_SIZES//,/ }; do
    use_size "$size"
    reference_restores
    for ((run = 1; run <= CRYPT_RUNS; run++)); do
      if (( run % 2 )); then order="plain enc"; else order="enc plain"; fi
      for m in $order; do crypt_case "$m" "$run"; done
    done
    if [[ $KEEP -eq 0 && "$size" != "$SIZE_MIB" ]]; then rm -f "$BASE" "$MUT" "$BASE".* "$MUT".*; fi
  done
fi
use_size "$SIZE_MIB"
reference_restores
KDF_N="$(R="$RUNDIR/kdf"; "$DV" --repo "$R" --password-file "$PWFILE" init --encrypt >/dev/null 2>&1 &&
  jq -c '.encryption // null' "$R/config" 2>/dev/null || echo null; rm -rf "$R")"
if has_part s3; then
  s3_start
  make_copy_repo
  for ((run = 1; run <= RUNS; run++)); do
    if (( run % 2 )); then order="local s3"; else order="s3 local"; fi
    for w in $order; do s3_backup_case "$w" "$run"; done
    if (( run % 2 )); then order="diskvault awscli"; else order="awscli diskvault"; fi
    for t in $order; do s3_copy_case "$t" "$run"; done
  done
fi

# ---------------------------------------------------------------- report
jq -n --arg start "$START_TS" --arg finish "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg args "$ARGS_ORIG" \
  --arg load0 "$START_LOAD" --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" --arg nproc "$NPROC" \
  --arg v_dv "$DV_VERSION" --arg dv_note "$DV_NOTE" --arg git_rev "$GIT_REV" --arg git_dirty "$GIT_DIRTY" \
  --arg v_aws "$("$AWS" --version 2>&1 | head -1)" \
  --arg v_swift "$(/usr/bin/python3 -c 'import swift; print(swift.__version__)' 2>/dev/null || echo n/a)" \
  --arg aes "$(grep -qw aes /proc/cpuinfo && echo yes || echo no)" \
  --argjson size_mib "$SIZE_MIB" --argjson runs "$RUNS" --argjson crypt_runs "$CRYPT_RUNS" --arg seed "$SEED" --argjson gen_seconds "$GEN_SECONDS" \
  --arg base_sha "$(sha "$BASE")" --arg mut_sha "$(sha "$MUT")" --arg e2fsck "$E2FSCK_ALL" --arg crypt_sizes "$CRYPT_SIZES" \
  --argjson kdf "$KDF_N" --argjson copy_bytes "${COPY_BYTES:-0}" --argjson copy_files "${COPY_FILES:-0}" \
  --argjson cmds "$(for k in "${!C[@]}"; do jq -n --arg k "$k" --arg v "${C[$k]}" '{($k):$v}'; done | jq -s add)" \
  '{start:$start,end:$finish,args:$args,load_start:$load0,load_end:$load1,nproc:$nproc,
    versions:{diskvault:$v_dv,aws:$v_aws,swift:$v_swift},dv_note:$dv_note,git_rev:$git_rev,git_dirty:$git_dirty,aes_ni:$aes,
    size_mib:$size_mib,crypt_sizes:($crypt_sizes | split(",") | map(tonumber)),runs:$runs,crypt_runs:$crypt_runs,seed:$seed,gen_seconds:$gen_seconds,base_sha:$base_sha,mut_sha:$mut_sha,
    e2fsck:$e2fsck,kdf:$kdf,copy_bytes:$copy_bytes,copy_files:$copy_files,cmds:$cmds}' >"$WORK/s3c-meta.json"
cp "$RES" "$WORK/s3c-results-$(date -u +%Y%m%dT%H%M%S).jsonl"
python3 "$HERE/report-s3-crypt.py" "$WORK/s3c-meta.json" "$RES" "$HERE/notes-s3-crypt.md" "$OUT"
log "updated $OUT"
if [[ $KEEP -eq 0 ]]; then rm -f "$BASE" "$MUT" "$BASE".* "$MUT".*; fi
