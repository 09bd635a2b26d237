#!/usr/bin/env bash
# Runs every libFuzzer target of a -DDV_FUZZ=ON build on its committed seed
# corpus for a fixed number of executions (default 20000; e.g. 2000000 for
# a long on-demand run, or run one binary by hand with -max_total_time=3600
# on a copy of its corpus directory). A crash fails the run and copies the
# reproducer (crash-*, leak-*, timeout-*, oom-*) to tests/fuzz/: fix the bug
# and commit the input to tests/fuzz/corpus/<target>/ as a regression seed.
#
# Targets: fuzz_formats.c (repository formats: index_segment, disk_index,
# pack_index, manifest, config, sealed; what the OS probe reads from an
# installed system: initramfs, fat, elf; the XFS used-block parser: xfs; ntfs and btrfs, on a sparse
# image format described in fuzz_formats.c, seeds made by sparse_seed.py), fuzz_aws.c (s3_xml, ec2_xml,
# ebs_json - which also covers the instance-metadata credentials - and
# aws_ini), fuzz_disk.c (disk_image: libblkid + libext2fs on a 4 MiB image).
#
# Inputs are capped at 64 KiB, except ntfs and btrfs (128 KiB) and disk_image (256 KiB: its seeds are the
# first sectors of real small images). scripts/test.sh runs 100000
# executions of each target; measured on 2 shared cores that takes 0-46 s
# per target and about 140 s for the first eleven (ec2_xml, which tries 8 parsers
# per input, and disk_image, which probes a memfd image with libblkid and
# libext2fs, are the slowest at about 45 s).
# Usage: tests/fuzz/run.sh BUILD_DIR [RUNS]
set -euo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-20000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/tests/fuzz_*; do
	t=${bin##*/fuzz_}
	case $t in
	disk_image) max_len=262144 ;;
	ntfs | btrfs) max_len=131072 ;;
	*) max_len=65536 ;;
	esac
	mkdir -p "$work/$t"
	cp "$here/corpus/$t"/* "$work/$t/" 2>/dev/null || true
	extra=()
	# libarchive's cpio reader reserves a read-ahead buffer as large as a
	# header's name or link size (up to 4 GiB of address space) before it
	# knows whether that much data follows; the read then fails and the
	# buffer is freed (a failed malloc is an error, not a crash). Not ours
	# to bound, so this target may allocate that much.
	# Those huge reservations make an execution slow under ASan (30-60 ms,
	# mostly in the kernel), so this target runs a fiftieth of the count
	# (2000 of CI's 100000, one to two minutes).
	n=$runs
	# libntfs-3g's ntfs_device_mount leaks parts of the volume it was
	# building when it refuses a damaged one (an attribute, an MFT record:
	# about 1 KiB per failed mount; ours to report, not to free). Those
	# leaks, and only those, are suppressed by lsan-ntfs.supp: matching
	# the function needs full malloc stacks (the library has no frame
	# pointers), which the slow unwinder gives at about half the speed.
	# A leak of ours (a volume not unmounted) still fails the run.
	# Function names need a symbolizer (Debian's llvm, in deps.sh); without
	# one, only the module can be matched, and leaks anywhere under
	# libntfs-3g are then suppressed (said below).
	env_extra=()
	if [ "$t" = ntfs ]; then
		sym=$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | sed -n 1p || true)
		supp=$here/lsan-ntfs.supp
		if [ -z "$sym" ]; then
			echo "fuzz ntfs: no llvm-symbolizer: suppressing every leak under libntfs-3g"
			supp=$work/lsan-ntfs-module.supp
			echo "leak:libntfs-3g.so" >"$supp"
		fi
		env_extra=(LSAN_OPTIONS="suppressions=$supp" ${sym:+ASAN_SYMBOLIZER_PATH="$sym"}
			ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
	fi
	[ "$t" = initramfs ] && extra=(-malloc_limit_mb=4300 -rss_limit_mb=4096) && n=$(((runs + 49) / 50))
	start=$SECONDS
	if (cd "$work" && env ${env_extra[@]+"${env_extra[@]}"} "$bin" -runs="$n" -max_len="$max_len" -timeout=10 ${extra[@]+"${extra[@]}"} "$work/$t" >"$work/$t.log" 2>&1); then
		echo "fuzz $t: $n runs, no crash ($((SECONDS - start)) s)"
	else
		echo "fuzz $t: FAILED"
		tail -40 "$work/$t.log"
		cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$here/" 2>/dev/null || true
		status=1
	fi
done
exit $status
