#!/usr/bin/env bash
# diskvault benchmark: diskvault vs restic, borg, casync and plain zstd on the
# same generated disk image, in one run. Run on demand; not part of CI.
#
# usage: tests/bench/run.sh [--size MIB] [--runs N] [--out FILE] [--seed S]
#                           [--tools LIST] [--no-install] [--no-scaling]
#                           [--no-used-blocks] [--keep]
#
#   --size MIB        disk size (default 2048)
#   --runs N          runs per measurement, medians are reported (default 3)
#   --out FILE        report to write (default docs/performance.md)
#   --seed S          image seed (default 1)
#   --tools LIST      comma list out of: diskvault,diskvault-all,restic,borg,casync,zstd
#   --no-install      do not apt-get install missing peers
#   --no-scaling      skip the diskvault peak-RSS-vs-disk-size runs
#   --no-used-blocks  skip the used-blocks comparison (issue 3)
#   --keep            keep images and repositories in the work dir
#
# Environment: DISKVAULT=/path/to/diskvault (otherwise built in build-bench/),
# BENCH_WORK=dir (default tests/bench/work/, gitignored).
# Every tool failure is recorded as n/a in the report; the run goes on.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_NAME=run.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"
SIZE_MIB=2048
RUNS=3
OUT="$ROOT/docs/performance.md"
SEED=1
TOOLS="diskvault,diskvault-all,restic,borg,casync,zstd"
INSTALL=1
SCALING=1
USEDBLOCKS=1
KEEP=0
bench_args 21 "--size SIZE_MIB" "--runs RUNS" "--out OUT" "--seed SEED" "--tools TOOLS" \
  "--no-install INSTALL=0" "--no-scaling SCALING=0" "--no-used-blocks USEDBLOCKS=0" "--keep KEEP=1" -- "$@"
[[ "$OUT" = /* ]] || OUT="$PWD/$OUT"
bench_work
NPROC="$(nproc)"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has_tool() { in_list "$TOOLS" "$1"; }

# ---------------------------------------------------------------- packages
need_pkgs=()
chk() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
chk restic restic; chk borg borgbackup; chk casync casync; chk zstd zstd
chk partclone.ext4 partclone; [[ -x /usr/bin/time ]] || need_pkgs+=(time)
chk mkfs.fat dosfstools; chk mcopy mtools; chk jq jq; chk sfdisk fdisk
chk debugfs e2fsprogs; chk python3 python3; chk openssl openssl
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  if [[ $INSTALL -eq 1 && $(id -u) -eq 0 ]]; then
    log "installing: ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >"$WORK/apt.log" 2>&1 || {
      apt-get update >>"$WORK/apt.log" 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >>"$WORK/apt.log" 2>&1; }
  else
    log "missing packages (not installing): ${need_pkgs[*]}"
  fi
fi
bench_require jq python3 openssl sfdisk debugfs mkfs.fat mcopy

# ---------------------------------------------------------------- diskvault
DV="${DISKVAULT:-}"
DV_NOTE=""
if [[ -z "$DV" ]] && { has_tool diskvault || has_tool diskvault-all; }; then
  if ! bench_build; then
    err="$(grep -m1 -E 'error|Error' "$WORK/build.log" | cut -c1-200)"
    old="$(find "$ROOT/build-bench" -type f -name diskvault -perm -u+x 2>/dev/null | head -1)"
    if [[ -n "$old" ]]; then
      DV="$old"
      DV_NOTE="build of the current tree failed ($err); used the previous build-bench binary from $(date -u -r "$old" +%Y-%m-%dT%H:%MZ)"
    else
      DV_NOTE="build failed: $err"
    fi
    log "diskvault: $DV_NOTE"
  fi
elif [[ -n "$DV" ]]; then
  DV_NOTE="DISKVAULT=$DV"
fi
if [[ -n "$DV" && ! -x "$DV" ]]; then DV_NOTE="not executable: $DV"; DV=""; fi
if [[ -z "$DV" && -z "$DV_NOTE" ]]; then DV_NOTE="not requested"; fi
GIT_REV="$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-100 || true)"
GIT_DIRTY="$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -vc '^??' || true)"
DV_VERSION="n/a"
[[ -n "$DV" ]] && DV_VERSION="$("$DV" --version 2>&1 | head -1 || true)"

# ---------------------------------------------------------------- images
IMGDIR="$WORK/img"
mkdir -p "$IMGDIR"
BASE="$IMGDIR/base-$SIZE_MIB.img"
MUT="$IMGDIR/mut-$SIZE_MIB.img"
log "generating images ($SIZE_MIB MiB, seed $SEED)"
T0=$(date +%s)
GEN_CACHED=0
bench_gensum
[[ -f "$BASE.stamp" && "$(cat "$BASE.stamp")" == "$SIZE_MIB $SEED 60 $GENSUM" ]] && GEN_CACHED=1
bench_image "$BASE" "$SIZE_MIB" 60
bench_mutated "$BASE" "$MUT"
GEN_SECONDS=$(( $(date +%s) - T0 ))
BASE_SHA="$(sha "$BASE")"; MUT_SHA="$(sha "$MUT")"

# ---------------------------------------------------------------- measuring
RES="$WORK/results.jsonl"
: >"$RES"
SRC="$WORK/src"      # the path every tool backs up: $SRC/disk.img (hard link)
RUNDIR="$WORK/run"
CACHE="$WORK/cache"
mkdir -p "$SRC" "$CACHE"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$CACHE/restic"
export BORG_PASSPHRASE="" BORG_CACHE_DIR="$CACHE/borg" BORG_CONFIG_DIR="$CACHE/borg-config" \
       BORG_SECURITY_DIR="$CACHE/borg-security" BORG_KEYS_DIR="$CACHE/borg-keys" \
       BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export R SRC O DV NPROC X  # what the command templates see

errline() { grep -v '^\s*$' "$T_ERR" | head -2 | tr '\n' ' ' | cut -c1-240; }
record() { # JSON object via jq args
  jq -c -n "$@" >>"$RES"
}
rec_phase() { # tool phase run ok extra-json
  local tool="$1" phase="$2" run="$3" ok="$4" extra="${5:-}"
  [[ -n "$extra" ]] || extra='{}'
  if [[ "$ok" == ok ]]; then
    record --arg tool "$tool" --arg phase "$phase" --argjson run "$run" \
      --argjson wall "$T_WALL" --argjson user "$T_USER" --argjson sys "$T_SYS" \
      --argjson rss "$T_RSS" --argjson rchar "${T_RCHAR:-0}" --argjson extra "$extra" --argjson load "$T_LOAD" \
      '{tool:$tool,phase:$phase,run:$run,ok:true,wall:$wall,user:$user,sys:$sys,rss_kib:$rss,rchar:$rchar,load1:$load} + $extra'
  else
    record --arg tool "$tool" --arg phase "$phase" --argjson run "$run" --arg err "$ok" \
      '{tool:$tool,phase:$phase,run:$run,ok:false,error:$err}'
  fi
}

# Commands per tool (the report quotes these templates verbatim).
declare -A C_INIT C_FIRST C_INCR C_RESTORE C_RESTORED
C_INIT[diskvault]='"$DV" --repo "$R" init --no-encrypt'
C_FIRST[diskvault]='"$DV" --repo "$R" backup "$SRC/disk.img" --json'
C_INCR[diskvault]='"$DV" --repo "$R" backup "$SRC/disk.img" --json'
C_RESTORE[diskvault]='"$DV" --repo "$R" restore latest "$O/disk.img"'
C_INIT[diskvault-all]='"$DV" --repo "$R" init --no-encrypt'
C_FIRST[diskvault-all]='"$DV" --repo "$R" backup --all-blocks "$SRC/disk.img" --json'
C_INCR[diskvault-all]='"$DV" --repo "$R" backup --all-blocks "$SRC/disk.img" --json'
C_RESTORE[diskvault-all]='"$DV" --repo "$R" restore latest "$O/disk.img"'
C_INIT[restic]='restic -r "$R" init --repository-version 2'
C_FIRST[restic]='restic -r "$R" backup --host bench "$SRC/disk.img"'
C_INCR[restic]='restic -r "$R" backup --host bench "$SRC/disk.img"'
C_RESTORE[restic]='restic -r "$R" restore latest --target "$O"'
C_INIT[borg]='borg init --encryption none "$R"'
C_FIRST[borg]='cd "$SRC" && borg create --compression zstd,3 "$R::first" disk.img'
C_INCR[borg]='cd "$SRC" && borg create --compression zstd,3 "$R::second" disk.img'
C_RESTORE[borg]='cd "$O" && borg extract "$R::second"'
C_INIT[casync]='mkdir -p "$R"'
C_FIRST[casync]='casync make --store="$R/store" "$R/first.caibx" "$SRC/disk.img"'
C_INCR[casync]='casync make --store="$R/store" "$R/second.caibx" "$SRC/disk.img"'
C_RESTORE[casync]='casync extract --store="$R/store" "$R/second.caibx" "$O/disk.img"'
C_INIT[zstd]='mkdir -p "$R"'
C_FIRST[zstd]='zstd -3 -T"$NPROC" -q "$SRC/disk.img" -o "$R/first.zst"'
C_INCR[zstd]='zstd -3 -T"$NPROC" -q "$SRC/disk.img" -o "$R/second.zst"'
C_RESTORE[zstd]='zstd -d -q "$R/second.zst" -o "$O/disk.img"'
# where each tool leaves the restored image, relative to $O
C_RESTORED[restic]="${SRC#/}/disk.img"
for t in diskvault diskvault-all borg casync zstd; do C_RESTORED[$t]="disk.img"; done

# Check a restored image: bit-exact for whole-image tools; for diskvault's
# used-blocks mode the free blocks of ext4, the free clusters of the ESP
# (vfat) and the swap body are not expected to match, so check the GPT and
# the swap header bit-exact, fsck.fat the ESP and compare its files, and
# e2fsck the ext4.
verify_restore() { # tool file
  local tool="$1" f="$2"
  [[ -f "$f" ]] || { echo "missing"; return; }
  local s; s="$(sha "$f")"
  if [[ "$s" == "$MUT_SHA" ]]; then echo "sha256-equal"; return; fi
  if [[ "$tool" == diskvault ]]; then bench_check_used_blocks "$f" "$MUT"; return; fi
  echo "MISMATCH"
}

bench_tool() { # tool run
  local tool="$1" run="$2" dvtool=0 s0 s1 s2 j v
  [[ "$tool" == diskvault* ]] && dvtool=1
  if [[ $dvtool -eq 1 && -z "$DV" ]]; then
    for ph in first incr restore; do rec_phase "$tool" "$ph" "$run" "diskvault unavailable: $DV_NOTE"; done
    return
  fi
  R="$RUNDIR/repo-$tool"; O="$RUNDIR/restore-$tool"; X="$RUNDIR/x-$tool"
  rm -rf "$R" "$O" "$X" "$CACHE"; mkdir -p "$O" "$X" "$CACHE" "$(dirname "$R")"
  point_src "$BASE"
  if ! timed init "${C_INIT[$tool]}"; then
    for ph in first incr restore; do rec_phase "$tool" "$ph" "$run" "init failed: $(errline)"; done
    rm -rf "$R" "$O" "$X"; return
  fi
  local s0; s0=$(dusb "$R")
  log "$tool run $run: first backup"
  if timed first "${C_FIRST[$tool]}"; then
    local s1 j='{}'; s1=$(dusb "$R")
    [[ $dvtool -eq 1 ]] && j="$(dv_json)"
    rec_phase "$tool" first "$run" ok "$(jq -c -n --argjson s "$s1" --argjson a "$((s1 - s0))" --argjson j "$j" '{stored:$s,added:$a,dv:$j}')"
  else
    rec_phase "$tool" first "$run" "first backup failed: $(errline)"
    rec_phase "$tool" incr "$run" "skipped (first backup failed)"
    rec_phase "$tool" restore "$run" "skipped (first backup failed)"
    rm -rf "$R" "$O" "$X"; return
  fi
  point_src "$MUT"
  log "$tool run $run: incremental backup"
  if timed incr "${C_INCR[$tool]}"; then
    local s2 j='{}'; s2=$(dusb "$R")
    [[ $dvtool -eq 1 ]] && j="$(dv_json)"
    rec_phase "$tool" incr "$run" ok "$(jq -c -n --argjson s "$s2" --argjson a "$((s2 - s1))" --argjson j "$j" '{stored:$s,added:$a,dv:$j}')"
  else
    rec_phase "$tool" incr "$run" "incremental backup failed: $(errline)"
    rec_phase "$tool" restore "$run" "skipped (incremental failed)"
    rm -rf "$R" "$O" "$X"; return
  fi
  log "$tool run $run: restore"
  if timed restore "${C_RESTORE[$tool]}"; then
    local v; v="$(verify_restore "$tool" "$O/${C_RESTORED[$tool]}")"
    rec_phase "$tool" restore "$run" ok "$(jq -c -n --arg v "$v" '{verify:$v}')"
    [[ "$v" == MISMATCH* || "$v" == missing ]] && log "$tool: restore verification: $v"
  else
    rec_phase "$tool" restore "$run" "restore failed: $(errline)"
  fi
  rm -rf "$R" "$O" "$X"
}

IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for ((run = 1; run <= RUNS; run++)); do
  for tool in "${TOOL_LIST[@]}"; do
    [[ -n "${C_FIRST[$tool]:-}" ]] || { log "unknown tool $tool"; continue; }
    bench_tool "$tool" "$run"
  done
done

# ---------------------------------------------------------------- used blocks (issue 3)
UB_IMG="$IMGDIR/used25-$SIZE_MIB.img"
declare -A C_UB
C_UB[default]='"$DV" --repo "$R" backup "$SRC/disk.img" --json'
C_UB[all-blocks]='"$DV" --repo "$R" backup --all-blocks "$SRC/disk.img" --json'
C_UB[partition]='"$DV" --repo "$R" backup "$X/part.img" --json'
C_UB[partclone]='bash -c '"'"'partclone.ext4 -c -q -s "$X/part.img" -o - -L "$X/partclone.log"; rc=$?; cat /proc/$$/io >"$X/io.partclone"; exit $rc'"'"' | zstd -3 -T"$NPROC" -q -o "$R/root.pcl.zst"'
C_UB[zstd-partition]='zstd -3 -T"$NPROC" -q "$X/part.img" -o "$R/root.zst"'
if [[ $USEDBLOCKS -eq 1 ]]; then
  log "used-blocks comparison on a 25%-full image"
  bench_image "$UB_IMG" "$SIZE_MIB" 25
  point_src "$UB_IMG"
  X="$RUNDIR/x-ub"; rm -rf "$X"; mkdir -p "$X"
  rs=$(jq .root.start "$UB_IMG.info.json"); rsz=$(jq .root.size "$UB_IMG.info.json")
  dd if="$UB_IMG" of="$X/part.img" bs=1M skip="$rs" count="$rsz" \
     iflag=skip_bytes,count_bytes conv=sparse status=none
  for ((run = 1; run <= RUNS; run++)); do
    for m in default all-blocks partition partclone zstd-partition; do
      if [[ "$m" != partclone && "$m" != zstd-partition && -z "$DV" ]]; then
        rec_phase "ub-$m" ub "$run" "diskvault unavailable: $DV_NOTE"; continue
      fi
      R="$RUNDIR/repo-ub-$m"; O="$RUNDIR/none"; rm -rf "$R" "$CACHE"; mkdir -p "$R"
      if [[ "$m" == default || "$m" == all-blocks || "$m" == partition ]]; then
        rm -rf "$R"
        if ! timed init "${C_INIT[diskvault]}"; then rec_phase "ub-$m" ub "$run" "init failed: $(errline)"; continue; fi
      fi
      log "used-blocks: $m run $run"
      if timed "ub-$m" "${C_UB[$m]}"; then
        j='{}'; rchar="$T_RCHAR"
        [[ "$m" == default || "$m" == all-blocks || "$m" == partition ]] && j="$(dv_json)"
        [[ "$m" == partclone ]] && rchar=$(awk '/^rchar/ {print $2}' "$X/io.partclone")
        T_RCHAR="$rchar"
        rec_phase "ub-$m" ub "$run" ok "$(jq -c -n --argjson s "$(dusb "$R")" --argjson j "$j" '{stored:$s,dv:$j}')"
      else
        rec_phase "ub-$m" ub "$run" "failed: $(errline)"
      fi
      rm -rf "$R"
    done
  done
  rm -rf "$X"
fi

# ---------------------------------------------------------------- RSS vs disk size
SCALE_SIZES=()
if [[ $SCALING -eq 1 && -n "$DV" ]] && { has_tool diskvault || has_tool diskvault-all; }; then
  for sz in $((SIZE_MIB / 4)) $((SIZE_MIB / 2)); do if (( sz >= 256 )); then SCALE_SIZES+=("$sz"); fi; done
  SCALE_SIZES+=("$SIZE_MIB")
  for sz in "${SCALE_SIZES[@]}"; do
    if [[ "$sz" == "$SIZE_MIB" ]]; then img="$BASE"
    else img="$IMGDIR/base-$sz.img"; bench_image "$img" "$sz" 60 || { log "could not make $img"; continue; }; fi
    point_src "$img"
    for m in diskvault diskvault-all; do
      R="$RUNDIR/repo-scale"; X="$RUNDIR/x-scale"; O="$RUNDIR/none"
      rm -rf "$R" "$X"; mkdir -p "$X"
      log "scaling: $m at $sz MiB"
      if timed init "${C_INIT[$m]}" && timed first "${C_FIRST[$m]}"; then
        rec_phase "$m" "scale" 1 ok "$(jq -c -n --argjson sz "$sz" --argjson s "$(dusb "$R")" --argjson j "$(dv_json)" '{size_mib:$sz,stored:$s,dv:$j}')"
      else
        record --arg tool "$m" --argjson sz "$sz" --arg err "$(errline)" '{tool:$tool,phase:"scale",run:1,ok:false,size_mib:$sz,error:$err}'
      fi
      rm -rf "$R" "$X"
    done
    [[ "$img" != "$BASE" && $KEEP -eq 0 ]] && rm -f "$img" "$img".*
  done
fi

# ---------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -1 || true; }
jq -n \
  --arg start "$START_TS" --arg finish "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg args "$ARGS_ORIG" --arg nproc "$NPROC" \
  --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg kernel "$(uname -srm)" --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" \
  --arg mem "$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
  --arg load0 "$START_LOAD" --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --arg fs "$(df -T "$WORK" | awk 'NR==2 {print $2}')" \
  --arg v_dv "$DV_VERSION" --arg dv_note "$DV_NOTE" --arg dv_path "$DV" \
  --arg v_restic "$(ver restic version)" --arg v_borg "$(ver borg --version)" \
  --arg v_casync "$(ver casync --version)" --arg v_zstd "$(ver zstd --version)" \
  --arg v_partclone "$(partclone.ext4 -v 2>&1 | grep -m1 -i partclone || true)" \
  --arg v_e2fs "$(mke2fs -V 2>&1 | head -1)" \
  --argjson size_mib "$SIZE_MIB" --argjson runs "$RUNS" --arg seed "$SEED" \
  --argjson gen_seconds "$GEN_SECONDS" --argjson gen_cached "$GEN_CACHED" \
  --arg git_rev "$GIT_REV" --arg git_dirty "$GIT_DIRTY" \
  --arg base_sha "$BASE_SHA" --arg mut_sha "$MUT_SHA" \
  --slurpfile base_info "$BASE.info.json" --slurpfile mutate "$MUT.mutate.json" \
  --argjson ub_info "$( [[ -f "$UB_IMG.info.json" ]] && cat "$UB_IMG.info.json" || echo null)" \
  --arg tools "$TOOLS" \
  --argjson cmds "$(for t in "${TOOL_LIST[@]}"; do jq -n --arg t "$t" --arg i "${C_INIT[$t]:-}" --arg f "${C_FIRST[$t]:-}" --arg n "${C_INCR[$t]:-}" --arg r "${C_RESTORE[$t]:-}" '{($t): {init:$i,first:$f,incr:$n,restore:$r}}'; done | jq -s 'add // {}')" \
  --argjson ubcmds "$(for m in default all-blocks partition partclone zstd-partition; do jq -n --arg m "$m" --arg c "${C_UB[$m]}" '{($m):$c}'; done | jq -s add)" \
  '{start:$start,end:$finish,args:$args,nproc:$nproc,cpu:$cpu,kernel:$kernel,os:$os,mem:$mem,
    load_start:$load0,load_end:$load1,fs:$fs,
    versions:{diskvault:$v_dv,restic:$v_restic,borg:$v_borg,casync:$v_casync,zstd:$v_zstd,partclone:$v_partclone,e2fsprogs:$v_e2fs},
    dv_note:$dv_note,dv_path:$dv_path,size_mib:$size_mib,runs:$runs,seed:$seed,gen_seconds:$gen_seconds,gen_cached:$gen_cached,git_rev:$git_rev,git_dirty:$git_dirty,
    base_sha:$base_sha,mut_sha:$mut_sha,base_info:$base_info[0],mutate:$mutate[0],ub_info:$ub_info,
    tools:($tools|split(",")),cmds:$cmds,ubcmds:$ubcmds}' >"$WORK/meta.json"
cp "$RES" "$WORK/results-$(date -u +%Y%m%dT%H%M%S).jsonl"
python3 "$HERE/report.py" "$WORK/meta.json" "$RES" "$HERE/notes.md" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"

# ---------------------------------------------------------------- cleanup
rm -rf "$RUNDIR" "$CACHE" "$SRC"
if [[ $KEEP -eq 0 ]]; then
  rm -f "$IMGDIR"/*.img
  rm -f "$IMGDIR"/*.stamp
fi
