# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are for the scripts that source it
# What the benchmark scripts (run.sh, run-ops.sh, run-s3-crypt.sh) share:
# option parsing, tool checks, the work directory, building diskvault, the
# generated images and timing a command. Sourced after the script has set
# HERE (its own directory) and BENCH_NAME (its name, for messages); sets
# ROOT, START_TS and START_LOAD (and ARGS_ORIG, GENSUM: see below).

ROOT="$(cd "$HERE/../.." && pwd)"
START_TS="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
START_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"

# bench_args HELP_LAST_LINE SPEC... -- ARG...: parses the command line into
# the script's variables. A SPEC is "--opt VAR" (the option takes a value,
# stored in VAR) or "--opt VAR=VALUE" (a flag that sets VAR to VALUE).
# -h/--help prints the script's header comment (lines 2..HELP_LAST_LINE).
# Also sets ARGS_ORIG to the arguments as given.
bench_args() {
  local help_last="$1" spec
  local -A takes sets
  shift
  while [[ $# -gt 0 && "$1" != -- ]]; do
    spec="$1"
    if [[ "${spec#* }" == *=* ]]; then sets[${spec%% *}]="${spec#* }"; else takes[${spec%% *}]="${spec#* }"; fi
    shift
  done
  shift
  ARGS_ORIG="$*"
  while [[ $# -gt 0 ]]; do
    if [[ -n "${takes[$1]:-}" ]]; then
      [[ $# -ge 2 ]] || { echo "$BENCH_NAME: $1 needs a value" >&2; exit 2; }
      printf -v "${takes[$1]}" '%s' "$2"
      shift 2
    elif [[ -n "${sets[$1]:-}" ]]; then
      printf -v "${sets[$1]%%=*}" '%s' "${sets[$1]#*=}"
      shift
    elif [[ "$1" == -h || "$1" == --help ]]; then
      sed -n "2,${help_last}p" "$0"
      exit 0
    else
      echo "$BENCH_NAME: unknown argument $1" >&2
      exit 2
    fi
  done
}

# in_list LIST ITEM: whether the comma list holds ITEM.
in_list() { [[ ",$1," == *",$2,"* ]]; }

# bench_work [SUBDIR]: creates the work directory (BENCH_WORK, default
# tests/bench/work/, plus SUBDIR) and sets WORK to its absolute path.
bench_work() {
  WORK="${BENCH_WORK:-$HERE/work}${1:+/$1}"
  mkdir -p "$WORK"
  WORK="$(cd "$WORK" && pwd)"
}

# bench_require TOOL...: exits 3 unless every TOOL and /usr/bin/time are there.
bench_require() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$BENCH_NAME: $t is required" >&2; exit 3; }
  done
  [[ -x /usr/bin/time ]] || { echo "$BENCH_NAME: /usr/bin/time (package time) is required" >&2; exit 3; }
}

# bench_build: builds diskvault from the working tree (Release, no tests) in
# build-bench/, output in $WORK/build.log; sets DV and DV_NOTE. Returns 1
# when the build failed.
bench_build() {
  log "building diskvault in build-bench/"
  (cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
   cmake --build "$ROOT/build-bench" -j2 --target diskvault) >"$WORK/build.log" 2>&1 || return 1
  DV="$(find "$ROOT/build-bench" -type f -name diskvault -perm -u+x | head -1)"
  DV_NOTE="built from the working tree at $(date -u +%H:%MZ) (Release)"
}

# bench_gensum: sets GENSUM, the checksum of the image generator (in the
# stamps), once (after the tool checks: it needs openssl).
bench_gensum() {
  [[ -n "${GENSUM:-}" ]] ||
    GENSUM="$(cat "$HERE/make-disk.sh" "$HERE/gen.py" "$HERE/mutate.sh" | openssl dgst -sha256 -r | cut -c1-16)"
}

# bench_image OUT SIZE_MIB [FILL]: make-disk.sh's image (seed $SEED), made
# again only when the size, seed, fill or generator changed (OUT.stamp).
bench_image() {
  local out="$1" size="$2" fill="${3:-60}"
  bench_gensum
  local want="$size $SEED $fill $GENSUM"
  if [[ -f "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" ]]; then return 0; fi
  log "generating the $size MiB image (seed $SEED)"
  rm -f "$out.stamp"
  "$HERE/make-disk.sh" --fill "$fill" "$out" "$size" "$SEED" >&2
  echo "$want" >"$out.stamp"
}

# bench_mutated BASE MUT: MUT is BASE after mutate.sh (seed $SEED), made
# again only when BASE changed.
bench_mutated() {
  local base="$1" mut="$2"
  if [[ -f "$mut.stamp" && "$(cat "$mut.stamp")" == "$(cat "$base.stamp")" ]]; then return 0; fi
  rm -f "$mut.stamp"
  cp --sparse=always "$base" "$mut"
  cp "$base.info.json" "$mut.info.json"; cp "$base.manifest.tsv" "$mut.manifest.tsv"
  "$HERE/mutate.sh" "$mut" "$SEED" >/dev/null
  # the mutation changes file data only: the ext4 must stay consistent
  if ! e2fsck -fn "$mut?offset=$(jq .root.start "$mut.info.json")" >/dev/null 2>&1; then
    echo "bench: the mutated image $mut fails e2fsck (mutate.sh damaged metadata)" >&2; return 1
  fi
  cp "$base.stamp" "$mut.stamp"
}

# bench_check_used_blocks RESTORED ORIGINAL: checks a restore of diskvault's
# used-blocks mode, where the free blocks of ext4, the free clusters of the
# ESP (vfat) and the swap body are not expected to match: the GPT and the
# swap header bit-exact, the ESP passes fsck.fat and holds the same files,
# the ext4 passes e2fsck. Prints one word: the result, or what failed.
bench_check_used_blocks() {
  local f="$1" orig="$2" rs sw es ess d
  rs=$(jq .root.start "$orig.info.json"); sw=$(jq .swap.start "$orig.info.json")
  es=$(jq .esp.start "$orig.info.json"); ess=$(jq .esp.size "$orig.info.json")
  cmp -s -n "$es" "$f" "$orig" || { echo "MISMATCH-gpt"; return; }
  cmp -s -n 4096 -i "$sw:$sw" "$f" "$orig" || { echo "MISMATCH-swap-header"; return; }
  d=$(mktemp -d)
  dd if="$f" of="$d/esp.r" bs=1M skip=$((es / 1048576)) count=$((ess / 1048576)) status=none
  dd if="$orig" of="$d/esp.m" bs=1M skip=$((es / 1048576)) count=$((ess / 1048576)) status=none
  mkdir "$d/r" "$d/m"
  if ! fsck.fat -n "$d/esp.r" >/dev/null 2>&1 ||
    ! MTOOLS_SKIP_CHECK=1 mcopy -s -n -i "$d/esp.r" '::/*' "$d/r/" ||
    ! MTOOLS_SKIP_CHECK=1 mcopy -s -n -i "$d/esp.m" '::/*' "$d/m/" || ! diff -r "$d/r" "$d/m" >/dev/null; then
    rm -rf "$d"; echo "MISMATCH-esp"; return
  fi
  rm -rf "$d"
  if e2fsck -fn "$f?offset=$rs" >/dev/null 2>&1; then echo "used-blocks:gpt+swaphdr-equal,esp-files-equal,e2fsck-ok"
  else echo "used-blocks:e2fsck-FAILED"; fi
}

sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
dusb() { du -sb "$1" 2>/dev/null | cut -f1; }
point_src() { ln -f "$1" "$SRC/disk.img"; }
# The last JSON line diskvault printed in the last timed command.
dv_json() { grep -E '^\s*\{' "$T_OUT" | tail -1 | jq -c . 2>/dev/null || echo '{}'; }

# timed NAME TEMPLATE: runs TEMPLATE (bash, seeing the exported variables)
# under /usr/bin/time in $X; sets T_WALL T_USER T_SYS T_RSS (KiB) T_RCHAR
# T_WCHAR (bytes read/written through read/write calls by the whole command
# tree, from /proc/PID/io of a wrapping shell, which includes reaped
# children), T_LOAD (1-min load when it started), T_OUT and T_ERR (files).
# Returns the command's exit status.
timed() {
  local name="$1" tmpl="$2" tf="$X/time.$1" io="$X/io.$1" rc=0
  T_OUT="$X/out.$name"; T_ERR="$X/err.$name"
  sync
  T_LOAD=$(cut -d' ' -f1 /proc/loadavg)
  IOF="$io" TMPL="$tmpl" /usr/bin/time -f '%e %U %S %M' -o "$tf" \
    bash -c 'bash -o pipefail -c "$TMPL"; rc=$?; cat /proc/$$/io >"$IOF"; exit $rc' \
    >"$T_OUT" 2>"$T_ERR" || rc=$?
  read -r T_WALL T_USER T_SYS T_RSS < <(tail -1 "$tf")
  T_RCHAR=$(awk '/^rchar/ {print $2}' "$io" 2>/dev/null || echo 0)
  T_WCHAR=$(awk '/^wchar/ {print $2}' "$io" 2>/dev/null || echo 0)
  return $rc
}
