#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and runs them: coverage-guided fuzzing on the
# stable toolchain, no cargo-fuzz and no nightly needed (see fuzz/README.md).
#
#   fuzz/run.sh smoke [target...]   each target FUZZ_SMOKE_SECONDS (default 3): `make fuzz-smoke`
#   fuzz/run.sh long  [target...]   each target FUZZ_SECONDS (default 300): `make fuzz`
#   fuzz/run.sh build               only build
#
# FUZZ_SANITIZER=address adds AddressSanitizer (needs RUSTC_BOOTSTRAP=1 on stable; this
# script sets it for that build only). FUZZ_ARGS passes more libFuzzer flags.
# New inputs go to fuzz/corpus/<target> (not in git); crashes to fuzz/artifacts/<target>.
# Every run also reads fuzz/seeds/<target> and fuzz/regressions/<target>.
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-smoke}"
shift || true
case "$mode" in
smoke) seconds="${FUZZ_SMOKE_SECONDS:-3}" ;;
long) seconds="${FUZZ_SECONDS:-300}" ;;
build) seconds=0 ;;
*)
    echo "usage: fuzz/run.sh smoke|long|build [target...]" >&2
    exit 2
    ;;
esac

all_targets=()
for f in fuzz_targets/*.rs; do
    all_targets+=("$(basename "$f" .rs)")
done
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${all_targets[@]}")
fi

# libfuzzer-sys compiles libFuzzer's C++ sources.
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz: a C++ compiler is needed to build libFuzzer (apt-get install g++)" >&2
    exit 1
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
# What cargo-fuzz passes for libFuzzer: SanitizerCoverage with inline 8-bit counters,
# the PC table and comparison tracing; `--cfg fuzzing` for code that wants to know.
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
target_dir="target"
sanitizer="${FUZZ_SANITIZER:-none}"
case "$sanitizer" in
none) ;;
address)
    flags+=" -Zsanitizer=address"
    export RUSTC_BOOTSTRAP=1
    target_dir="target/asan"
    ;;
*)
    echo "fuzz: FUZZ_SANITIZER must be none or address" >&2
    exit 2
    ;;
esac

started=$(date +%s)
# `--target` keeps the instrumentation off build scripts and proc macros.
RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target_dir" cargo build --quiet --release --target "$host" --bins
bin_dir="$target_dir/$host/release"
echo "fuzz: built ${#all_targets[@]} targets in $(($(date +%s) - started)) s (sanitizer: $sanitizer)"
[ "$mode" = build ] && exit 0

failed=()
for t in "${targets[@]}"; do
    if [ ! -x "$bin_dir/$t" ]; then
        echo "fuzz: no target named $t (have: ${all_targets[*]})" >&2
        exit 2
    fi
    mkdir -p "corpus/$t" "artifacts/$t"
    dirs=("corpus/$t")
    for extra in "seeds/$t" "regressions/$t"; do
        [ -d "$extra" ] && dirs+=("$extra")
    done
    log="artifacts/$t/last-run.log"
    # shellcheck disable=SC2086
    if "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" ${FUZZ_ARGS:-} "${dirs[@]}" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
        echo "fuzz: $t: ${runs:-?} runs in ${seconds} s, ${cov:-cov: ?}, no crash"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED; the last lines of $log:" >&2
        tail -n 30 "$log" >&2
        for a in "artifacts/$t"/crash-* "artifacts/$t"/leak-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-*; do
            [ -e "$a" ] || continue
            echo "fuzz:   reproduce: fuzz/$bin_dir/$t fuzz/$a" >&2
            echo "fuzz:   keep it as a regression once fixed: cp fuzz/$a fuzz/regressions/$t/" >&2
        done
    fi
done

echo "fuzz: ${#targets[@]} targets, ${#failed[@]} failed, $(($(date +%s) - started)) s in all"
[ ${#failed[@]} -eq 0 ]
